//! Rotating a password rolls the pods. (Moving an inline password is tested on the real API
//! server: operator/tests/cluster/gitops.rs.)

use crate::common::*;

async fn config_hash(h: &Harness, name: &str) -> String {
    let deployment = h.deployments.get(&format!("{name}-sink")).await.unwrap();
    deployment
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap()["adbsink.io/config-hash"]
        .clone()
}

fn secret_value(secret: &k8s_openapi::api::core::v1::Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[tokio::test]
async fn rotating_the_referenced_secret_changes_the_pod_template_hash() {
    bounded(async {
        let h = Harness::new().await;
        let (name, _) = h.new_sink("rotate", 1, "before", |_| {}).await;
        h.reconcile(&name).await.expect("reconcile");
        let first = config_hash(&h, &name).await;

        h.reconcile(&name).await.expect("reconcile");
        assert_eq!(
            config_hash(&h, &name).await,
            first,
            "nothing changed, nothing rolls"
        );

        h.put_secret("db", &[("password", "after")]).await;
        h.reconcile(&name).await.expect("reconcile");
        let secret = h.secrets.get(&format!("{name}-credentials")).await.unwrap();
        assert_eq!(secret_value(&secret, "password"), "after");
        assert_ne!(
            config_hash(&h, &name).await,
            first,
            "rotation rolls the pods"
        );

        drop_sink_kafka(&name).await;
    })
    .await;
}
