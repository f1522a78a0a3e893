//! Inline passwords move into the credentials Secret; rotation rolls the pods.

use k8s_openapi::api::events::v1::Event;
use kube::Api;

use crate::common::*;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

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
async fn inline_password_moves_into_the_credentials_secret() {
    bounded(async {
        let h = Harness::new().await;
        let (name, _) = h
            .new_sink("inline", 1, "unused", |s| {
                s.spec.destination.password_secret_ref = None;
                s.spec.destination.password = Some("inline-pw-1".into());
                let manifest = serde_json::to_string(&s).unwrap();
                s.metadata.annotations = Some([(LAST_APPLIED.to_string(), manifest)].into());
            })
            .await;

        h.reconcile(&name).await.expect("reconcile");
        let secret = h.secrets.get(&format!("{name}-credentials")).await.unwrap();
        assert_eq!(secret_value(&secret, "password"), "inline-pw-1");

        let moved = h.get(&name).await;
        assert_eq!(moved.spec.destination.password, None);
        let reference = moved.spec.destination.password_secret_ref.clone().unwrap();
        assert_eq!(
            (reference.name, reference.key),
            (format!("{name}-credentials"), "password".into())
        );
        let everything = serde_json::to_string(&moved).unwrap();
        assert!(
            !everything.contains("inline-pw-1"),
            "password left in the CR: {everything}"
        );
        assert_eq!(
            moved.status.as_ref().unwrap().observed_generation,
            moved.metadata.generation
        );

        let events: Api<Event> = Api::namespaced(h.client.clone(), NS);
        let events =
            serde_json::to_string(&events.list(&Default::default()).await.unwrap()).unwrap();
        assert!(events.contains("PasswordMoved"), "{events}");
        assert!(!events.contains("inline-pw-1"));

        // The next reconcile reads the password back through the reference.
        h.reconcile(&name).await.expect("reconcile");
        let secret = h.secrets.get(&format!("{name}-credentials")).await.unwrap();
        assert_eq!(secret_value(&secret, "password"), "inline-pw-1");

        drop_sink_kafka(&name).await;
    })
    .await;
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
