//! The harness: an in-memory API server (kube-fake-client) with the AnalyticDBSink type, the
//! operator's real `reconcile`, and the real Kafka broker of `scripts/dev-services.sh`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adbsink_crd::{AnalyticDBSink, AnalyticDBSinkStatus, InitialOffset, ResourceCreation};
use adbsink_operator::metrics::Metrics;
use adbsink_operator::{Config, Context};
use adbsink_runtime::KafkaConnection;
use adbsink_runtime::provision::{GroupState, Provisioner};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

pub const NS: &str = "default";
pub const LIMIT: Duration = Duration::from_secs(120);
const KAFKA_TIMEOUT: Duration = Duration::from_secs(20);

/// The broker of the local services; a missing setting fails the test, it does not skip it.
pub fn bootstrap() -> String {
    std::env::var("ADBSINK_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "ADBSINK_KAFKA_BOOTSTRAP is not set: start the services with `scripts/dev-services.sh up` \
             and `eval \"$(scripts/dev-services.sh env)\"`, or run `scripts/test.sh`"
        )
    })
}

/// A name unique to this process and call, valid as a sink name (<= 48 chars) and topic name.
pub fn unique(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fails the test if `test` takes longer than `LIMIT`.
pub async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {LIMIT:?}"))
}

/// Polls `check` until it returns Some, or panics after `limit` naming what was awaited.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub struct Harness {
    pub client: Client,
    pub ctx: Arc<Context>,
    pub sinks: Api<AnalyticDBSink>,
    pub secrets: Api<Secret>,
    pub deployments: Api<Deployment>,
}

impl Harness {
    pub async fn new() -> Self {
        let client = kube_fake_client::ClientBuilder::new()
            .with_resource::<AnalyticDBSink>()
            .with_status_subresource::<Deployment>()
            .build()
            .await
            .expect("fake client");
        let ctx = Context::new(
            client.clone(),
            Config::default(),
            Arc::new(Metrics::default()),
        );
        Self {
            sinks: Api::namespaced(client.clone(), NS),
            secrets: Api::namespaced(client.clone(), NS),
            deployments: Api::namespaced(client.clone(), NS),
            ctx: Arc::new(ctx),
            client,
        }
    }

    /// Stores a sink; a status is set so the fake API server treats status as a subresource.
    /// The finalizer is already on it: kube's finalizer helper adds it with a JSON patch that
    /// tests `/metadata/finalizers` against null, which the real API server accepts for an
    /// absent field and the fake one rejects.
    pub async fn create(&self, mut sink: AnalyticDBSink) -> AnalyticDBSink {
        sink.status = Some(AnalyticDBSinkStatus::default());
        sink.metadata.finalizers = Some(vec![adbsink_crd::FINALIZER.to_string()]);
        let api: Api<AnalyticDBSink> =
            Api::namespaced(self.client.clone(), &sink.namespace().unwrap_or(NS.into()));
        api.create(&PostParams::default(), &sink)
            .await
            .expect("create sink")
    }

    /// Stores a sink (see `sink`) reading a fresh topic of `partitions`, with its password in
    /// Secret `db`; `edit` adjusts the spec first. Returns the sink's and the topic's names.
    pub async fn new_sink(
        &self,
        prefix: &str,
        partitions: i32,
        password: &str,
        edit: impl FnOnce(&mut AnalyticDBSink),
    ) -> (String, String) {
        let name = unique(prefix);
        let source = unique("src");
        create_topic(&source, partitions).await;
        self.put_secret("db", &[("password", password)]).await;
        let mut s = sink(&name, &source);
        edit(&mut s);
        self.create(s).await;
        (name, source)
    }

    pub async fn get(&self, name: &str) -> AnalyticDBSink {
        self.sinks.get(name).await.expect("get sink")
    }

    /// Reconciles the stored sink as the controller would after a change.
    pub async fn reconcile(&self, name: &str) -> Result<Action, adbsink_operator::Error> {
        let sink = self.get(name).await;
        adbsink_operator::reconcile(Arc::new(sink), self.ctx.clone()).await
    }

    pub async fn put_secret(&self, name: &str, data: &[(&str, &str)]) {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        self.secrets
            .patch(
                name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&secret),
            )
            .await
            .expect("secret");
    }

    /// Simulates the Deployment controller reporting `ready` pods.
    pub async fn set_ready_replicas(&self, sink: &str, ready: i32) {
        let patch = serde_json::json!({"status": {"readyReplicas": ready, "replicas": ready}});
        self.deployments
            .patch_status(
                &format!("{sink}-sink"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .expect("deployment status");
    }
}

/// A valid PostgreSQL sink reading `topic` from the local broker, password from Secret `db`.
pub fn sink(name: &str, topic: &str) -> AnalyticDBSink {
    let mut sink = adbsink_crd::from_yaml(&format!(
        r#"
apiVersion: adbsink.io/v1alpha1
kind: AnalyticDBSink
metadata: {{name: {name}, namespace: {NS}}}
spec:
  source: {{bootstrapServers: "{}", topic: {topic}, concurrency: 6}}
  threadsPerReplica: 3
  destination:
    instanceType: AnalyticDBForPostgreSQL
    host: 127.0.0.1
    port: 25432
    database: adbsink
    table: events
    username: adbsink
    passwordSecretRef: {{name: db, key: password}}
"#,
        bootstrap()
    ))
    .expect("sink manifest");
    sink.metadata.namespace = Some(NS.into());
    sink
}

/// The sink container of a sink Deployment.
pub fn container(deployment: &Deployment) -> &Container {
    &deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .expect("a pod template")
        .containers[0]
}

pub fn condition<'a>(sink: &'a AnalyticDBSink, type_: &str) -> &'a Condition {
    sink.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {:#?}", sink.status))
}

/// (status, reason) of a condition.
pub fn state(sink: &AnalyticDBSink, type_: &str) -> (String, String) {
    let c = condition(sink, type_);
    (c.status.clone(), c.reason.clone())
}

pub fn provisioner() -> Provisioner {
    let connection = KafkaConnection {
        bootstrap_servers: bootstrap(),
        ..KafkaConnection::default()
    };
    Provisioner::new(&connection).expect("provisioner")
}

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin")
}

pub async fn create_topic(name: &str, partitions: i32) {
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1));
    let options = AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT));
    for result in admin()
        .create_topics(&[topic], &options)
        .await
        .expect("create topic")
    {
        result.expect("topic created");
    }
}

/// Partition count of a topic, None when the broker does not know it.
pub fn partitions(name: &str) -> Option<usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(None, KAFKA_TIMEOUT)
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == name && t.error().is_none())
        .map(|t| t.partitions().len())
}

pub async fn cleanup_policy(name: &str) -> Option<String> {
    let options = AdminOptions::new().request_timeout(Some(KAFKA_TIMEOUT));
    let results = admin()
        .describe_configs(&[ResourceSpecifier::Topic(name)], &options)
        .await
        .expect("describe configs");
    let resource = results.into_iter().next()?.ok()?;
    resource.get("cleanup.policy").and_then(|e| e.value.clone())
}

/// Whether the group has committed offsets on `topic` (checked without creating it).
pub async fn group_exists(group: &str, topic: &str) -> bool {
    let state = provisioner()
        .ensure_group(
            group,
            topic,
            InitialOffset::Earliest,
            ResourceCreation::Manual,
        )
        .await
        .expect("group lookup");
    state == GroupState::Exists
}

/// The internal topics of sink `name` with the default runtime settings.
pub fn internal_topics(name: &str) -> Vec<String> {
    adbsink_crd::InternalTopic::resolve_all(name, &Default::default())
        .into_iter()
        .map(|t| t.name)
        .collect()
}

/// Removes the default internal topics and group of sink `name` from the broker.
pub async fn drop_sink_kafka(name: &str) {
    drop_kafka(&internal_topics(name), &format!("connect-{name}")).await;
}

/// Removes what a test left on the broker.
pub async fn drop_kafka(topics: &[String], group: &str) {
    let p = provisioner();
    let _ = p.delete_topics(topics).await;
    let _ = p.delete_group(group).await;
}
