//! Operator options a platform team turns on and off: per-sink NetworkPolicies (turned off,
//! the ones made are removed; a user's own stays), and health endpoints on `[::]`, which
//! answer on IPv4 and IPv6 and say ready once the watches have synced; and a watch the
//! operator's RBAC refuses, which must be visible in its log as a warning.

use k8s_openapi::api::networking::v1::NetworkPolicy;

use crate::harness::{
    Cluster, Password, apply_new_sink, create_password_secret, eventually, free_port, http_get,
    manifest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_network_policies_off_removes_the_ones_the_operator_made() {
    let Some(mut cluster) = Cluster::without_operator("netpol").await else {
        return;
    };
    cluster.start_operator_with(&["--network-policies"]);
    let name = cluster.namespace.clone();
    create_password_secret(&cluster, "db", "pw");
    apply_new_sink(&cluster, &name, &manifest(&name, Password::Ref("db"))).await;
    let policy = format!("{name}-sink");
    eventually(&cluster, "the sink's NetworkPolicy", || async {
        cluster
            .api::<NetworkPolicy>()
            .get_opt(&policy)
            .await
            .ok()?
            .map(drop)
    })
    .await;
    // A user's own policy carrying the sink label is not the operator's to remove.
    cluster.kubectl_with(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: users\n  \
             labels: {{adbsink.io/sink: {name}}}\nspec:\n  podSelector: {{}}\n  \
             policyTypes: [Ingress]\n"
        )),
    );

    cluster.stop_operator();
    cluster.start_operator();
    eventually(&cluster, "the sink's NetworkPolicy removed", || async {
        cluster
            .api::<NetworkPolicy>()
            .get_opt(&policy)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        cluster
            .api::<NetworkPolicy>()
            .get_opt("users")
            .await
            .unwrap()
            .is_some(),
        "the user's policy was removed"
    );
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_on_the_unspecified_ipv6_address_answer_both_families() {
    let Some(cluster) = Cluster::without_operator("dualstack").await else {
        return;
    };
    let port = free_port();
    let log = std::env::temp_dir().join(format!("{}-dualstack.log", cluster.namespace));
    let mut operator = cluster.spawn_operator(
        &["--metrics-addr", &format!("[::]:{port}")],
        &[],
        port,
        &log,
    );
    for address in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        eventually(&cluster, &format!("/readyz 200 on {address}"), || async {
            http_get(&address, "/readyz")
                .await?
                .starts_with("HTTP/1.1 200")
                .then_some(())
        })
        .await;
    }
    let _ = operator.kill();
    let _ = operator.wait();
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_the_operator_may_not_make_is_logged_as_a_warning() {
    let Some(cluster) = Cluster::without_operator("watchfail").await else {
        return;
    };
    let ns = cluster.namespace.clone();
    // Sinks only: the watches of Deployments, Secrets and NetworkPolicies are refused.
    cluster.kubectl_ok(&["create", "serviceaccount", "limited"]);
    cluster.kubectl_ok(&[
        "create",
        "role",
        "limited",
        "--verb=get,list,watch,patch",
        "--resource=analyticdbsinks.adbsink.io",
    ]);
    cluster.kubectl_ok(&[
        "create",
        "rolebinding",
        "limited",
        "--role=limited",
        &format!("--serviceaccount={ns}:limited"),
    ]);
    let who = format!("system:serviceaccount:{ns}:limited");
    let port = free_port();
    let log = std::env::temp_dir().join(format!("{ns}-watchfail.log"));
    let mut operator = cluster.spawn_operator(
        &[],
        &[("KUBE_RS_DEBUG_IMPERSONATE_USER", who.as_str())],
        port,
        &log,
    );
    eventually(&cluster, "a WARN line saying the watch failed", || async {
        let text = std::fs::read_to_string(&log).ok()?;
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("watch failed") && l.contains("forbidden"))
            .then_some(())
    })
    .await;
    let _ = operator.kill();
    let _ = operator.wait();
    cluster.finish().await;
}
