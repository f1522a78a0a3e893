//! A Secret named `<name>-credentials` that the user made is never taken over: taking it would
//! make the garbage collector delete it with the sink.

use adbsink_crd::credentials_secret_name;
use k8s_openapi::api::core::v1::Secret;

use crate::harness::{
    Cluster, Password, apply_new_sink, create_password_secret, eventually, manifest, secret_value,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_secret_of_the_credentials_name_is_reported_and_left_alone() {
    let Some(cluster) = Cluster::start("own-secret").await else {
        return;
    };
    let name = cluster.namespace.clone();
    let taken = credentials_secret_name(&name);
    create_password_secret(&cluster, &taken, "users-own");
    create_password_secret(&cluster, "db", "pw");
    apply_new_sink(&cluster, &name, &manifest(&name, Password::Ref("db"))).await;
    let message = eventually(
        &cluster,
        "CredentialsReady=False SecretConflict",
        || async {
            let sink = cluster.sinks().get(&name).await.ok()?;
            sink.status?
                .conditions
                .into_iter()
                .find(|c| {
                    c.type_ == "CredentialsReady"
                        && c.status == "False"
                        && c.reason == "SecretConflict"
                })
                .map(|c| c.message)
        },
    )
    .await;
    assert!(message.contains(&taken), "{message}");
    eventually(&cluster, "a SecretConflict Event", || async {
        let events = cluster.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=SecretConflict",
            "-o",
            "name",
        ]);
        (!events.trim().is_empty()).then_some(())
    })
    .await;
    let secret: Secret = cluster.api::<Secret>().get(&taken).await.unwrap();
    assert!(secret.metadata.owner_references.is_none(), "{secret:?}");
    assert_eq!(
        secret_value(&cluster, &taken, "password").await.as_deref(),
        Some("users-own")
    );
    assert!(
        cluster
            .api::<k8s_openapi::api::apps::v1::Deployment>()
            .get_opt(&format!("{name}-sink"))
            .await
            .unwrap()
            .is_none(),
        "nothing is built on a Secret that is not the sink's"
    );
    cluster.kubectl_ok(&["delete", "adbsink", &name, "--timeout=60s"]);
    assert!(
        cluster
            .api::<Secret>()
            .get_opt(&taken)
            .await
            .unwrap()
            .is_some()
    );
    cluster.finish().await;
}
