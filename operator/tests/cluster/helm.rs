//! The chart installed with the pinned Helm grants the operator exactly what it calls: the
//! ServiceAccount is checked verb by verb with `kubectl auth can-i --as`, then the real
//! operator runs as that ServiceAccount (impersonated) through a sink's whole life without one
//! refusal. Uninstalling removes everything the release made and keeps the CRD.

use std::collections::BTreeSet;
use std::process::Command;

use adbsink_crd::AnalyticDBSink;
use k8s_openapi::api::apps::v1::Deployment;

use crate::harness::{Cluster, Password, apply_new_sink, eventually, free_port, manifest};

const RELEASE: &str = "adbsink";
const SERVICE_ACCOUNT: &str = "adbsink-adbsink-operator";

fn helm(cluster: &Cluster, args: &[&str]) -> String {
    let helm = std::env::var("ADBSINK_HELM").unwrap_or_else(|_| "helm".into());
    let output = Command::new(helm)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["--namespace", &cluster.namespace])
        .args(args)
        .output()
        .expect("helm");
    assert!(
        output.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// (resource, subresource) → the verbs the operator calls on it; everything else is refused.
fn used() -> Vec<(&'static str, &'static str, &'static [&'static str])> {
    vec![
        (
            "analyticdbsinks.adbsink.io",
            "",
            &["get", "list", "watch", "patch"],
        ),
        ("analyticdbsinks.adbsink.io", "status", &["patch"]),
        ("analyticdbsinks.adbsink.io", "finalizers", &["update"]),
        ("secrets", "", &["get", "list", "watch", "create", "patch"]),
        ("configmaps", "", &["get"]),
        ("pods", "", &["list"]),
        (
            "deployments.apps",
            "",
            &["list", "watch", "create", "patch"],
        ),
        ("networkpolicies.networking.k8s.io", "", &["list", "delete"]),
        ("events.events.k8s.io", "", &["create", "patch"]),
        ("events", "", &[]),
        (
            "leases.coordination.k8s.io",
            "",
            &["get", "create", "update"],
        ),
        ("services", "", &[]),
        ("serviceaccounts", "", &[]),
        ("roles.rbac.authorization.k8s.io", "", &[]),
    ]
}

const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_grants_exactly_what_the_operator_calls_and_uninstalls_cleanly() {
    let Some(cluster) = Cluster::without_operator("helm").await else {
        return;
    };
    let ns = cluster.namespace.clone();
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/adbsink-operator");
    helm(
        &cluster,
        &[
            "install",
            RELEASE,
            chart,
            "--skip-crds",
            "--set",
            &format!("watchNamespaces={{{ns}}}"),
            "--set",
            "leaderElection.enabled=true",
        ],
    );

    let who = format!("system:serviceaccount:{ns}:{SERVICE_ACCOUNT}");
    let mut wrong = Vec::new();
    for (resource, subresource, granted) in used() {
        for verb in VERBS {
            let mut args = vec!["auth", "can-i", verb, resource, "--as", &who];
            if !subresource.is_empty() {
                args.extend(["--subresource", subresource]);
            }
            let answer = cluster.kubectl(&args, None);
            let allowed = String::from_utf8_lossy(&answer.stdout).trim() == "yes";
            if allowed != granted.contains(&verb) {
                wrong.push(format!(
                    "{verb} {resource}/{subresource}: allowed={allowed}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "RBAC differs from what the operator calls: {wrong:#?}"
    );

    // The operator as that ServiceAccount, with leader election as the chart turns it on.
    let log = std::env::temp_dir().join(format!("{ns}-helm-operator.log"));
    let mut operator = cluster.spawn_operator(
        &["--leader-election"],
        &[
            ("KUBE_RS_DEBUG_IMPERSONATE_USER", who.as_str()),
            ("POD_NAMESPACE", ns.as_str()),
            ("POD_NAME", "helm-operator-0"),
        ],
        free_port(),
        &log,
    );
    let name = format!("{ns}-s");
    let sink = format!(
        "{}  deletionPolicy: Delete\n",
        manifest(&name, Password::Inline("pw"))
    );
    apply_new_sink(&cluster, &name, &sink).await;
    eventually(
        &cluster,
        "the sink provisioned by the ServiceAccount",
        || async {
            let sink: AnalyticDBSink = cluster.sinks().get(&name).await.ok()?;
            cluster
                .api::<Deployment>()
                .get_opt(&format!("{name}-sink"))
                .await
                .ok()??;
            let status = sink.status?;
            (sink.spec.destination.password.is_none() && status.created_topics.len() == 4)
                .then_some(())
        },
    )
    .await;
    cluster.kubectl_ok(&["delete", "adbsink", &name, "--timeout=60s"]);
    let _ = operator.kill();
    let _ = operator.wait();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log.contains("impersonating user"),
        "not run as the ServiceAccount:\n{log}"
    );
    assert!(
        !log.contains("forbidden") && !log.contains("Forbidden"),
        "the operator was refused something:\n{log}"
    );

    helm(
        &cluster,
        &["uninstall", RELEASE, "--wait", "--timeout", "60s"],
    );
    let left = cluster.kubectl_ok(&[
        "get",
        "deployments,services,serviceaccounts,roles,rolebindings,poddisruptionbudgets",
        "-l",
        &format!("app.kubernetes.io/instance={RELEASE}"),
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "", "left behind by helm uninstall");
    let crds: BTreeSet<String> = cluster
        .kubectl_ok(&["get", "crd", "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        crds.contains("customresourcedefinition.apiextensions.k8s.io/analyticdbsinks.adbsink.io"),
        "helm keeps CRDs from crds/ (deleting them would delete every sink)"
    );
    cluster.finish().await;
}
