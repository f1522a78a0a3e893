//! GitOps tools apply the same manifest again and again. With an inline password the operator
//! moves it into `<name>-credentials`; the next apply carries it again and must be accepted
//! (Flux always, and Argo CD with ServerSideApply, apply server-side; others client-side), and
//! the password is moved again, never staying in the CR.

use adbsink_crd::{AnalyticDBSink, credentials_secret_name};

use crate::harness::{Cluster, Password, create_topic, eventually, manifest, secret_value};

async fn moved(cluster: &Cluster, name: &str, password: &str) {
    let secret = credentials_secret_name(name);
    eventually(cluster, &format!("password {password:?} moved"), || async {
        let sink: AnalyticDBSink = cluster.sinks().get(name).await.ok()?;
        let destination = &sink.spec.destination;
        let last_applied = sink
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
            .cloned()
            .unwrap_or_default();
        (destination.password.is_none()
            && destination
                .password_secret_ref
                .as_ref()
                .map(|r| r.name.as_str())
                == Some(secret.as_str())
            && !last_applied.contains(password)
            && secret_value(cluster, &secret, "password").await.as_deref() == Some(password))
        .then_some(())
    })
    .await;
}

async fn apply_repeatedly(prefix: &str, apply: &[&str]) {
    let Some(cluster) = Cluster::start(prefix).await else {
        return;
    };
    let name = cluster.namespace.clone();
    create_topic(&format!("{name}-in")).await;
    for password in [
        "first-secret",
        "first-secret",
        "first-secret",
        "second-secret",
    ] {
        let output = cluster.kubectl(apply, Some(&manifest(&name, Password::Inline(password))));
        assert!(
            output.status.success(),
            "re-applying the manifest was refused: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        moved(&cluster, &name, password).await;
    }
    // Nowhere in the CR (managed fields included) nor in the Events.
    let sink = cluster.kubectl_ok(&[
        "get",
        "adbsink",
        &name,
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let events = cluster.kubectl_ok(&["get", "events", "-o", "json"]);
    assert!(events.contains("PasswordMoved"), "{events}");
    for password in ["first-secret", "second-secret"] {
        assert!(!sink.contains(password), "password left in the CR: {sink}");
        assert!(!events.contains(password), "password in an Event: {events}");
    }
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_manifest_applies_again_and_again_server_side() {
    apply_repeatedly(
        "gitops-ssa",
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "flux",
            "-f",
            "-",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_manifest_applies_again_and_again_client_side() {
    apply_repeatedly("gitops-csa", &["apply", "-f", "-"]).await;
}
