//! The plugin's commands: thin calls around pure patch builders.

use std::time::Duration;

use adbsink_crd::{ANNOTATION_RESTART, AnalyticDBSink, KafkaTlsSpec};
use adbsink_runtime::{KafkaConnection, Secret};
use k8s_openapi::api::core::v1::{ConfigMap, Secret as KubeSecret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

pub type Result<T> = std::result::Result<T, String>;

/// The merge patch for pause/resume.
pub fn paused_patch(paused: bool) -> Value {
    json!({"spec": {"paused": paused}})
}

/// The merge patch for a new concurrency; the API server's schema refuses values other than
/// 1, 2, 3, 6 and 12 with a message naming them.
pub fn scale_patch(concurrency: u32) -> Value {
    json!({"spec": {"source": {"concurrency": concurrency}}})
}

/// The merge patch asking the operator to roll the sink pods once: a new annotation value.
pub fn restart_patch(token: &str) -> Value {
    json!({"metadata": {"annotations": {ANNOTATION_RESTART: token}}})
}

fn sinks(client: kube::Client, namespace: &str) -> Api<AnalyticDBSink> {
    Api::namespaced(client, namespace)
}

async fn get(client: kube::Client, namespace: &str, name: &str) -> Result<AnalyticDBSink> {
    sinks(client, namespace)
        .get(name)
        .await
        .map_err(|e| format!("analyticdbsink {namespace}/{name}: {e}"))
}

async fn merge(client: kube::Client, namespace: &str, name: &str, patch: &Value) -> Result<()> {
    sinks(client, namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("analyticdbsink {namespace}/{name}: {e}"))
}

pub async fn status(client: kube::Client, namespace: &str, name: &str) -> Result<String> {
    Ok(crate::render::status(&get(client, namespace, name).await?))
}

pub async fn set_paused(
    client: kube::Client,
    namespace: &str,
    name: &str,
    paused: bool,
) -> Result<()> {
    merge(client, namespace, name, &paused_patch(paused)).await
}

pub async fn scale(
    client: kube::Client,
    namespace: &str,
    name: &str,
    concurrency: u32,
) -> Result<()> {
    merge(client, namespace, name, &scale_patch(concurrency)).await
}

/// Returns the token written into the restart annotation.
pub async fn restart(client: kube::Client, namespace: &str, name: &str) -> Result<String> {
    let token = jiff::Timestamp::now().to_string();
    merge(client, namespace, name, &restart_patch(&token)).await?;
    Ok(token)
}

/// Produces one message to the sink's source topic with the sink's own Kafka settings and
/// credentials. Returns (partition, offset).
pub async fn send_test(
    client: kube::Client,
    namespace: &str,
    name: &str,
    value: &str,
    key: Option<&str>,
    partition: Option<i32>,
) -> Result<(i32, i64)> {
    let sink = get(client.clone(), namespace, name).await?;
    let source = &sink.spec.source;
    let secrets: Api<KubeSecret> = Api::namespaced(client.clone(), namespace);
    let sasl = match &source.sasl {
        None => None,
        Some(sasl) => {
            let secret_ref = &sasl.credentials_secret_ref;
            let secret = secrets
                .get(&secret_ref.name)
                .await
                .map_err(|e| format!("secret {}: {e}", secret_ref.name))?;
            let username = secret_value(&secret, &secret_ref.username_key)?;
            let password = secret_value(&secret, &secret_ref.password_key)?;
            Some((username, Secret::new(password)))
        }
    };
    let ca = match &source.tls {
        Some(KafkaTlsSpec {
            ca_secret_ref: Some(r),
            ..
        }) => {
            let secret = secrets
                .get(&r.name)
                .await
                .map_err(|e| format!("secret {}: {e}", r.name))?;
            Some(secret_value(&secret, &r.key)?)
        }
        Some(KafkaTlsSpec {
            ca_config_map_ref: Some(r),
            ..
        }) => {
            let maps: Api<ConfigMap> = Api::namespaced(client, namespace);
            let map = maps
                .get(&r.name)
                .await
                .map_err(|e| format!("configmap {}: {e}", r.name))?;
            Some(
                map.data
                    .and_then(|d| d.get(&r.key).cloned())
                    .ok_or_else(|| format!("configmap {} has no key {}", r.name, r.key))?,
            )
        }
        _ => None,
    };
    let connection = KafkaConnection::from_source(source, sasl, ca);
    let producer: FutureProducer = connection
        .client_config()
        .create()
        .map_err(|e| format!("kafka client: {e}"))?;
    let mut record = FutureRecord::<str, str>::to(&source.topic).payload(value);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    let delivery = producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| format!("sending to {}: {e}", source.topic))?;
    Ok((delivery.partition, delivery.offset))
}

fn secret_value(secret: &KubeSecret, key: &str) -> Result<String> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| format!("secret {name} has no key {key}"))?;
    String::from_utf8(bytes.0.clone()).map_err(|_| format!("secret {name} key {key} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use kube_fake_client::ClientBuilder;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    use super::*;

    fn sink(bootstrap: &str, topic: &str) -> AnalyticDBSink {
        let mut sink: AnalyticDBSink = adbsink_crd::from_yaml(&format!(
            "apiVersion: adbsink.io/v1alpha1\nkind: AnalyticDBSink\nmetadata: {{name: orders, namespace: default}}\n\
             spec:\n  source: {{bootstrapServers: \"{bootstrap}\", topic: \"{topic}\"}}\n  \
             destination: {{instanceType: AnalyticDBForMySQL, host: h, database: d, table: t, username: u, \
             passwordSecretRef: {{name: s, key: password}}}}\n"
        ))
        .expect("sink");
        sink.metadata.namespace = Some("default".into());
        sink
    }

    async fn client_with(sink: AnalyticDBSink) -> kube::Client {
        ClientBuilder::new()
            .with_resource::<AnalyticDBSink>()
            .with_object(sink)
            .build()
            .await
            .expect("fake client")
    }

    #[test]
    fn patches_touch_only_what_they_mean() {
        assert_eq!(paused_patch(true), json!({"spec": {"paused": true}}));
        assert_eq!(
            scale_patch(12),
            json!({"spec": {"source": {"concurrency": 12}}})
        );
        assert_eq!(
            restart_patch("t1"),
            json!({"metadata": {"annotations": {"adbsink.io/restart": "t1"}}})
        );
    }

    #[tokio::test]
    async fn pause_resume_and_restart_patch_the_resource() {
        let client = client_with(sink("b:9092", "t")).await;
        set_paused(client.clone(), "default", "orders", true)
            .await
            .unwrap();
        let api = sinks(client.clone(), "default");
        assert!(api.get("orders").await.unwrap().spec.paused);
        set_paused(client.clone(), "default", "orders", false)
            .await
            .unwrap();
        assert!(!api.get("orders").await.unwrap().spec.paused);
        let token = restart(client.clone(), "default", "orders").await.unwrap();
        let annotations = api
            .get("orders")
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap();
        assert_eq!(annotations.get(ANNOTATION_RESTART), Some(&token));
        let err = set_paused(client, "default", "missing", true)
            .await
            .unwrap_err();
        assert!(err.contains("default/missing"), "{err}");
    }

    #[tokio::test]
    async fn test_sends_a_message_a_consumer_reads_back() {
        let bootstrap = std::env::var("ADBSINK_KAFKA_BOOTSTRAP")
            .expect("ADBSINK_KAFKA_BOOTSTRAP: run scripts/dev-services.sh up and eval its env");
        let topic = format!("plugin-test-{}", std::process::id());
        let client = client_with(sink(&bootstrap, &topic)).await;
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .create()
                .unwrap();
        let new =
            rdkafka::admin::NewTopic::new(&topic, 2, rdkafka::admin::TopicReplication::Fixed(-1));
        admin
            .create_topics([&new], &rdkafka::admin::AdminOptions::new())
            .await
            .unwrap();

        let (partition, offset) = send_test(
            client,
            "default",
            "orders",
            r#"{"id": 1}"#,
            Some("k1"),
            Some(1),
        )
        .await
        .unwrap();
        assert_eq!(partition, 1);

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "plugin-test")
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&topic, 1, Offset::Offset(offset))
            .unwrap();
        consumer.assign(&list).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let message = loop {
            assert!(
                std::time::Instant::now() < deadline,
                "message not read back"
            );
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                break m.unwrap().detach();
            }
        };
        assert_eq!(message.payload(), Some(&br#"{"id": 1}"#[..]));
        assert_eq!(message.key(), Some(&b"k1"[..]));
        // Closed before the topic goes: librdkafka 2.12 crashes (SIGSEGV) on the leader hint
        // Tansu sends a consumer still fetching a deleted topic, which names no topic.
        drop(consumer);
        let _ = admin
            .delete_topics(&[topic.as_str()], &rdkafka::admin::AdminOptions::new())
            .await;
    }
}
