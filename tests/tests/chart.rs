//! The Helm chart, rendered by the pinned Helm 3.18: lint clean, least-privilege RBAC, the
//! restricted security context, namespace-scoped mode, HA switches, the generated CRD, and a
//! values schema that rejects wrong types.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::{Value, json};

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/adbsink-operator")
}

fn helm(args: &[&str]) -> Output {
    let helm = std::env::var("ADBSINK_HELM")
        .expect("ADBSINK_HELM: run scripts/dev-services.sh up and eval its env");
    Command::new(helm).args(args).output().expect("run helm")
}

fn render(extra: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "adbsink",
        chart.to_str().unwrap(),
        "--namespace",
        "adbsink-system",
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    let out = helm(&args);
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            serde_yaml::from_value::<Value>(serde_yaml::Value::deserialize(doc).unwrap()).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn nondefault() -> String {
    chart()
        .join("ci/nondefault-values.yaml")
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn lint_passes_strict_with_default_and_non_default_values() {
    let chart = chart();
    let out = helm(&["lint", "--strict", chart.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = helm(&[
        "lint",
        "--strict",
        "-f",
        &nondefault(),
        chart.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn schema_rejects_a_string_replica_count() {
    let chart = chart();
    let out = helm(&[
        "template",
        "x",
        chart.to_str().unwrap(),
        "--set-string",
        "replicaCount=two",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("replicaCount") && stderr.contains("integer"),
        "{stderr}"
    );
}

/// (apiGroup, resource) → sorted verbs, over all rules of a role.
fn grants(role: &Value) -> std::collections::BTreeMap<(String, String), Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                let mut verbs: Vec<String> = rule["verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                verbs.sort();
                out.insert(
                    (
                        group.as_str().unwrap().to_string(),
                        resource.as_str().unwrap().to_string(),
                    ),
                    verbs,
                );
            }
        }
    }
    out
}

fn verbs(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn rbac_grants_exactly_what_the_operator_uses() {
    let docs = render(&[]);
    for role in of_kind(&docs, "ClusterRole")
        .into_iter()
        .chain(of_kind(&docs, "Role"))
    {
        assert!(
            !serde_json::to_string(&role["rules"]).unwrap().contains('*'),
            "no wildcard: {role}"
        );
    }
    let main = of_kind(&docs, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "adbsink-adbsink-operator")
        .expect("the operator's ClusterRole");
    let expected = [
        (
            ("adbsink.io", "analyticdbsinks"),
            verbs(&["get", "list", "watch", "patch"]),
        ),
        (("adbsink.io", "analyticdbsinks/status"), verbs(&["patch"])),
        (
            ("adbsink.io", "analyticdbsinks/finalizers"),
            verbs(&["update"]),
        ),
        (
            ("", "secrets"),
            verbs(&["get", "list", "watch", "create", "patch"]),
        ),
        (("", "configmaps"), verbs(&["get"])),
        (("", "pods"), verbs(&["list"])),
        (
            ("apps", "deployments"),
            verbs(&["list", "watch", "create", "patch"]),
        ),
        (
            ("networking.k8s.io", "networkpolicies"),
            verbs(&["list", "delete"]),
        ),
        (("events.k8s.io", "events"), verbs(&["create", "patch"])),
    ]
    .into_iter()
    .map(|((g, r), v)| ((g.to_string(), r.to_string()), v))
    .collect();
    assert_eq!(grants(main), expected);
    let lease = of_kind(&docs, "Role")
        .into_iter()
        .find(|r| {
            r["metadata"]["name"]
                .as_str()
                .unwrap()
                .ends_with("leader-election")
        })
        .unwrap();
    assert_eq!(lease["metadata"]["namespace"], "adbsink-system");
    assert_eq!(
        grants(lease),
        [(
            ("coordination.k8s.io".to_string(), "leases".to_string()),
            verbs(&["get", "create", "update"])
        )]
        .into_iter()
        .collect()
    );
}

#[test]
fn the_operator_pod_is_restricted_by_default() {
    let docs = render(&[]);
    let deployment = of_kind(&docs, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"],
        json!({"type": "RuntimeDefault"})
    );
    let container = &pod["containers"][0];
    assert_eq!(
        container["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}})
    );
    assert_eq!(deployment["spec"]["replicas"], 1);
    let args = container["args"].as_array().unwrap();
    assert!(!args.contains(&json!("--leader-election")));
    assert!(
        args.contains(&json!("--metrics-addr=[::]:8080")),
        "IPv6-only clusters probe [::]"
    );
    assert!(args.contains(&json!("--sink-run-as-user=65532")));
    assert_eq!(
        container["env"][0],
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        "events name the replica"
    );
    assert!(of_kind(&docs, "PodDisruptionBudget").is_empty());
}

#[test]
fn the_platform_may_assign_the_uids_as_openshift_requires() {
    let docs = render(&[
        "--set",
        "sinkRunAsUser=null",
        "--set",
        "podSecurityContext.runAsUser=null",
        "--set",
        "podSecurityContext.runAsGroup=null",
        "--set",
        "podSecurityContext.fsGroup=null",
    ]);
    let pod = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    let args = pod["containers"][0]["args"].as_array().unwrap();
    assert!(
        args.contains(&json!("--sink-run-as-user=platform")),
        "{args:?}"
    );
}

#[test]
fn a_uid_from_an_openshift_range_is_passed_whole() {
    let docs = render(&["--set", "sinkRunAsUser=1000650000"]);
    let args = of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .clone();
    assert!(
        args.as_array()
            .unwrap()
            .contains(&json!("--sink-run-as-user=1000650000")),
        "{args}"
    );
}

#[test]
fn network_policy_rbac_follows_the_option() {
    let docs = render(&["--set", "sinkNetworkPolicies.enabled=true"]);
    let main = of_kind(&docs, "ClusterRole")[0];
    assert_eq!(
        grants(main)[&(
            "networking.k8s.io".to_string(),
            "networkpolicies".to_string()
        )],
        verbs(&["list", "watch", "create", "patch"])
    );
}

#[test]
fn watch_namespaces_give_roles_instead_of_a_cluster_role() {
    let docs = render(&["-f", &nondefault()]);
    let cluster_roles: Vec<&str> = of_kind(&docs, "ClusterRole")
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(cluster_roles.is_empty(), "{cluster_roles:?}");
    let namespaces: Vec<&str> = of_kind(&docs, "Role")
        .iter()
        .filter(|r| {
            !r["metadata"]["name"]
                .as_str()
                .unwrap()
                .ends_with("leader-election")
        })
        .map(|r| r["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, vec!["team-a", "team-b"]);
    let args = of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .clone();
    assert!(
        args.as_array()
            .unwrap()
            .contains(&json!("--watch-namespaces=team-a,team-b")),
        "{args}"
    );
}

#[test]
fn two_replicas_turn_on_leader_election_and_a_pdb() {
    let docs = render(&["--set", "replicaCount=2"]);
    let deployment = of_kind(&docs, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    assert!(args.contains(&json!("--leader-election")));
    assert_eq!(of_kind(&docs, "PodDisruptionBudget").len(), 1);
}

#[test]
fn the_chart_ships_the_generated_crd() {
    let docs = render(&[]);
    let crd = of_kind(&docs, "CustomResourceDefinition");
    assert_eq!(crd.len(), 1);
    let generated: Value = serde_yaml::from_str(&adbsink_crd::crd_yaml().unwrap()).unwrap();
    assert_eq!(crd[0], &generated);
}
