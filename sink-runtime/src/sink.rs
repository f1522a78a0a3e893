//! A sink process: its share of the consumer tasks, the status reporter, lag metrics and the
//! health endpoint, all stopped by one cancellation token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adbsink_crd::{AnalyticDBSinkSpec, ResolvedTopics, resolved_topics};
use rdkafka::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureProducer;
use tokio::sync::{Mutex, Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::database::{Database, DatabaseSettings, WriteError};
use crate::dispatch::{GroupConsumer, GroupContext, dispatch};
use crate::error::Result;
use crate::fence::Fence;
use crate::isolate::Interrupted;
use crate::kafka::KafkaConnection;
use crate::metrics::{Metrics, PartitionLabel};
use crate::pipeline::{backoff, run_task, writes_in_flight};
use crate::provision::{BROKER_DEFAULT_MAX_MESSAGE_BYTES, Provisioner};
use crate::records::TaskState;
use crate::stats::{TaskStats, publish_status};
use crate::table::Table;

/// Chunks of messages (up to 256 each) waiting between the dispatcher and one task. Small: the
/// batches are the buffer; this only keeps the dispatcher from waiting on each task in turn.
const LANE_CAPACITY: usize = 4;

/// The producer's own cap: far above any topic's limit, which is what bounds a record.
const PRODUCER_MAX_MESSAGE_BYTES: usize = 256 << 20;

/// Consumer settings the sink owns, with why; `--kafka-property` cannot change them.
const MANAGED_CONSUMER_PROPERTIES: [(&str, &str); 9] = [
    (
        "enable.auto.commit",
        "offsets move only after the database has committed the rows",
    ),
    (
        "enable.auto.offset.store",
        "offsets move only after the database has committed the rows",
    ),
    (
        "auto.offset.reset",
        "a partition without a usable offset resumes at its oldest record, never skipping any",
    ),
    (
        "group.id",
        "the consumer group is spec.runtime.consumerGroup (connect-<sink name> by default), \
         where the operator reads lag and offsets",
    ),
    (
        "bootstrap.servers",
        "it is spec.source.bootstrapServers, shared by every client of the sink",
    ),
    (
        "security.protocol",
        "it follows spec.source.tls and spec.source.sasl, shared by every client of the sink",
    ),
    (
        "ssl.ca.pem",
        "it is spec.source.tls's CA (--kafka-ca-file), shared by every client of the sink",
    ),
    (
        "client.id",
        "it names the sink's tasks in status and metrics",
    ),
    (
        "enable.partition.eof",
        "the dispatcher expects no end-of-partition events",
    ),
];

/// Everything a sink process needs, credentials resolved.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    pub spec: AnalyticDBSinkSpec,
    pub kafka: KafkaConnection,
    pub database: DatabaseSettings,
    /// Consumer tasks this process runs (its share of `spec.source.concurrency`); they share
    /// one group member.
    pub threads: u32,
    /// Task ids are `<prefix>-<n>`; the pod name in Kubernetes.
    pub task_prefix: String,
    /// Extra librdkafka consumer properties, e.g. shorter session timeouts.
    pub consumer_properties: Vec<(String, String)>,
    pub http_addr: Option<SocketAddr>,
    /// How often task status is republished without a change.
    pub status_period: Duration,
}

/// How long a table's description is trusted. A column dropped shows at once, by the error it
/// causes, and one added under `unknownFields: Fail` by the message naming it; a default set,
/// a unique index created or a column added under `Ignore` causes no error, yet the description
/// decides which columns a write may fill with NULL, which values are dropped and which batches
/// may be written at once, so it is read again this often.
pub const DESCRIPTION_TTL: Duration = Duration::from_secs(30);

/// State shared by the tasks of one process.
pub struct Shared {
    pub name: String,
    pub spec: AnalyticDBSinkSpec,
    pub topics: ResolvedTopics,
    pub database: Database,
    pub producer: FutureProducer,
    pub metrics: Arc<Metrics>,
    pub stop: CancellationToken,
    table: Mutex<Option<(Arc<Table>, Instant)>>,
    offsets_table: tokio::sync::OnceCell<()>,
    kafka: KafkaConnection,
    record_limits: tokio::sync::OnceCell<RecordLimits>,
    /// Keeps writes off partitions the group has taken away.
    pub fence: Arc<Fence>,
}

/// The largest record the dead-letter and the error topic take.
#[derive(Debug, Clone, Copy)]
pub struct RecordLimits {
    pub dead_letter: usize,
    pub error: usize,
}

impl Shared {
    /// The table's columns, described on first use, after [`Shared::forget_table`] and once
    /// the description is [`DESCRIPTION_TTL`] old; a database that is down or a table that
    /// does not exist yet is retried until `abort`. A description that expired and cannot be
    /// read again is kept for another period: nothing says it is wrong.
    pub async fn table(
        &self,
        stats: &TaskStats,
        abort: &CancellationToken,
    ) -> Result<Arc<Table>, Interrupted> {
        let mut cached = tokio::select! {
            cached = self.table.lock() => cached,
            _ = abort.cancelled() => return Err(Interrupted::Shutdown),
        };
        if let Some((table, at)) = &mut *cached {
            if at.elapsed() < DESCRIPTION_TTL {
                return Ok(table.clone());
            }
            match self.database.describe().await {
                Ok(fresh) => *table = Arc::new(fresh),
                Err(error) => {
                    warn!(%error, "reading the table's description again failed; keeping the one read before")
                }
            }
            *at = Instant::now();
            return Ok(table.clone());
        }
        let mut attempt = 0;
        loop {
            match self.database.describe().await {
                Ok(table) => {
                    let table = Arc::new(table);
                    *cached = Some((table.clone(), Instant::now()));
                    if stats.state() == TaskState::Retrying {
                        stats.set_state(TaskState::Running, None);
                    }
                    return Ok(table);
                }
                Err(error) => {
                    attempt += 1;
                    if !backoff(self, stats, abort, attempt, &error).await {
                        return Err(Interrupted::Shutdown);
                    }
                }
            }
        }
    }

    /// Creates the exactly-once offsets table once per process.
    pub async fn ensure_offsets_table(&self) -> Result<(), WriteError> {
        self.offsets_table
            .get_or_try_init(|| self.database.ensure_offsets_table())
            .await
            .map(|_| ())
    }

    /// What the dead-letter and error topics take, read from the broker on first use; a limit
    /// the broker does not report is taken as Kafka's default.
    pub async fn record_limits(&self) -> RecordLimits {
        *self
            .record_limits
            .get_or_init(|| async {
                let topics = [self.topics.dead_letter.as_str(), self.topics.error.as_str()];
                let reported = match Provisioner::new(&self.kafka) {
                    Ok(provisioner) => provisioner.max_message_bytes(&topics).await.ok(),
                    Err(_) => None,
                }
                .unwrap_or_default();
                let limit = |topic: &str| {
                    reported
                        .get(topic)
                        .copied()
                        .flatten()
                        .unwrap_or(BROKER_DEFAULT_MAX_MESSAGE_BYTES)
                };
                RecordLimits {
                    dead_letter: limit(topics[0]),
                    error: limit(topics[1]),
                }
            })
            .await
    }

    pub async fn forget_table(&self) {
        *self.table.lock().await = None;
    }

    pub async fn table_age(&self) -> Duration {
        self.table
            .lock()
            .await
            .as_ref()
            .map_or(Duration::MAX, |(_, at)| at.elapsed())
    }
}

/// Runs the sink until `stop` is cancelled, then finishes in-flight batches, commits and
/// returns.
pub async fn run(config: SinkConfig, stop: CancellationToken) -> Result<()> {
    let span = info_span!("sink", sink = %config.name);
    run_inner(config, stop).instrument(span).await
}

async fn run_inner(config: SinkConfig, stop: CancellationToken) -> Result<()> {
    let topics = resolved_topics(&config.name, &config.spec.runtime);
    let group = config
        .spec
        .runtime
        .consumer_group
        .clone()
        .unwrap_or_else(|| adbsink_crd::default_consumer_group(&config.name));
    let producer: FutureProducer = config
        .kafka
        .client_config()
        .set("acks", "all")
        .set("linger.ms", "5")
        // A failed produce retried by librdkafka is not written twice.
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        // Copies of source records can be as large as the topics take; each is checked
        // against its topic's own limit before it is sent (pipeline::route_failures).
        .set("message.max.bytes", PRODUCER_MAX_MESSAGE_BYTES.to_string())
        .create()?;
    let metrics = Arc::new(Metrics::new(&config.name));
    let fence = Arc::new(Fence::default());
    let shared = Arc::new(Shared {
        name: config.name.clone(),
        spec: config.spec.clone(),
        topics: topics.clone(),
        // A connection per write in flight, and one to describe the table meanwhile.
        database: Database::connect(
            &config.database,
            config.threads * writes_in_flight(&config.spec) as u32 + 1,
        ),
        producer: producer.clone(),
        metrics: metrics.clone(),
        stop: stop.clone(),
        table: Mutex::new(None),
        offsets_table: tokio::sync::OnceCell::new(),
        kafka: config.kafka.clone(),
        record_limits: tokio::sync::OnceCell::new(),
        fence: fence.clone(),
    });
    let changed = Arc::new(Notify::new());
    let tasks: Vec<Arc<TaskStats>> = (0..config.threads)
        .map(|n| {
            Arc::new(TaskStats::new(
                format!("{}-{n}", config.task_prefix),
                changed.clone(),
            ))
        })
        .collect();
    info!(
        threads = config.threads,
        topic = %config.spec.source.topic,
        group = %group,
        table = %config.spec.destination.table,
        "sink starting"
    );

    // Reporters outlive the tasks by a moment so the final states get published.
    let reporters_stop = CancellationToken::new();
    let mut reporters = Vec::new();
    reporters.push(tokio::spawn(publish_status(
        producer.clone(),
        topics.status.clone(),
        config.name.clone(),
        tasks.clone(),
        changed.clone(),
        config.status_period,
        reporters_stop.clone(),
    )));
    reporters.push(tokio::spawn(report_lag(
        config.kafka.clone(),
        group.clone(),
        config.spec.source.topic.clone(),
        metrics.clone(),
        reporters_stop.clone(),
    )));
    if let Some(addr) = config.http_addr {
        let (metrics, tasks, stop) = (metrics.clone(), tasks.clone(), reporters_stop.clone());
        reporters.push(tokio::spawn(async move {
            if let Err(e) = crate::http::serve(addr, metrics, tasks, stop).await {
                warn!(error = %e, %addr, "health endpoint failed");
            }
        }));
    }

    let consumer: Arc<GroupConsumer> = Arc::new(
        consumer_config(
            &config.kafka,
            &config.consumer_properties,
            &group,
            &config.task_prefix,
        )
        .create_with_context(GroupContext::new(tasks.clone(), fence))?,
    );
    consumer.subscribe(&[config.spec.source.topic.as_str()])?;
    // Connect and describe the table while the group forms, not after the first batch
    // arrives. A database that is down shows as the first task retrying.
    if let Some(first) = tasks.first() {
        let (shared, first) = (shared.clone(), first.clone());
        tokio::spawn(
            async move {
                let never = CancellationToken::new();
                shared.table(&first, &never).await.map(drop)
            }
            .in_current_span(),
        );
    }
    let mut handles = Vec::new();
    let mut senders = Vec::new();
    for stats in &tasks {
        let (tx, rx) = mpsc::channel(LANE_CAPACITY);
        senders.push(tx);
        let (shared, stats) = (shared.clone(), stats.clone());
        let span = info_span!("task", task = %stats.id);
        handles.push(tokio::spawn(
            run_task(shared, stats, consumer.clone(), rx).instrument(span),
        ));
    }
    dispatch(&consumer, senders, &stop).await;
    let mut result = Ok(());
    for handle in handles {
        match handle.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "task ended with an error");
                result = Err(e);
            }
            Err(e) => warn!(error = %e, "task panicked"),
        }
    }
    // Leave the group only once every task has committed what it wrote.
    consumer.unsubscribe();
    drop(consumer);
    reporters_stop.cancel();
    for reporter in reporters {
        let _ = reporter.await;
    }
    shared.database.close().await;
    let _ = rdkafka::producer::Producer::flush(&producer, Duration::from_secs(5));
    info!("sink stopped");
    result
}

fn consumer_config(
    kafka: &KafkaConnection,
    properties: &[(String, String)],
    group: &str,
    client_id: &str,
) -> ClientConfig {
    let mut consumer = kafka.client_config();
    // One prefetch queue per process, shared by its tasks, kept small for memory. When it is
    // full librdkafka waits fetch.queue.backoff.ms (1 s by default) before fetching again,
    // which starved the tasks; rechecking every 10 ms keeps them fed from 4 MiB. A fetch
    // response is held whole, so it is capped too. Measured in docs/performance.md. These are
    // tuning, so a user's --kafka-property replaces them.
    consumer
        .set("queued.max.messages.kbytes", "4096")
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.max.bytes", "2097152");
    for (key, value) in properties {
        if !is_managed(key) {
            consumer.set(key, value);
        }
    }
    consumer
        .set("group.id", group)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // initialOffset applies once, when the group is created (provision::ensure_group).
        // A partition without a committed offset, or whose committed offset has left the log,
        // resumes at the oldest record still there: never at the end, which would skip
        // records silently. The reset is logged (dispatch::GroupContext).
        .set("auto.offset.reset", "earliest");
    consumer
}

/// Why the sink owns consumer property `key`, if it does.
pub fn managed_consumer_property(key: &str) -> Option<&'static str> {
    if key.starts_with("sasl.") {
        // A credential on the command line is visible to every user of the machine.
        return Some(
            "SASL follows spec.source.sasl, with the credentials from ADBSINK_SASL_USERNAME and \
             ADBSINK_SASL_PASSWORD",
        );
    }
    MANAGED_CONSUMER_PROPERTIES
        .iter()
        .find(|(managed, _)| *managed == key)
        .map(|(_, why)| *why)
}

fn is_managed(key: &str) -> bool {
    managed_consumer_property(key).is_some()
}

/// Refreshes the per-partition lag gauges every 15 s.
async fn report_lag(
    kafka: KafkaConnection,
    group: String,
    topic: String,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let Ok(provisioner) = Provisioner::new(&kafka) else {
        return;
    };
    loop {
        if let Ok(lag) = provisioner.lag(&group, &topic).await {
            for (partition, behind) in lag.partitions {
                metrics
                    .lag
                    .get_or_create(&PartitionLabel {
                        partition: partition.to_string(),
                    })
                    .set(behind);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(15)) => {}
        }
    }
}

impl From<WriteError> for crate::Error {
    fn from(e: WriteError) -> Self {
        crate::Error::Config(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_users_tuning_replaces_ours_but_what_the_sink_owns_stays() {
        let kafka = KafkaConnection {
            bootstrap_servers: "b:9092".into(),
            ..KafkaConnection::default()
        };
        let given = properties(&[
            ("fetch.max.bytes", "8388608"),
            ("session.timeout.ms", "10000"),
            ("group.id", "someone-else"),
            ("enable.auto.commit", "true"),
        ]);
        let config = consumer_config(&kafka, &given, "connect-s", "s-0");
        assert_eq!(config.get("fetch.max.bytes"), Some("8388608"));
        assert_eq!(config.get("session.timeout.ms"), Some("10000"));
        assert_eq!(config.get("queued.max.messages.kbytes"), Some("4096"));
        assert_eq!(config.get("group.id"), Some("connect-s"));
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
    }

    #[test]
    fn every_property_the_sink_sets_for_itself_is_managed() {
        let kafka = KafkaConnection {
            bootstrap_servers: "b:9092".into(),
            sasl: Some(crate::kafka::SaslCredentials {
                mechanism: adbsink_crd::SaslMechanism::Plain,
                username: "u".into(),
                password: crate::Secret::new("p"),
            }),
            tls: true,
            ca_pem: Some("-----BEGIN CERTIFICATE-----".into()),
        };
        let config = consumer_config(&kafka, &[], "g", "c");
        let tuning = [
            "queued.max.messages.kbytes",
            "fetch.queue.backoff.ms",
            "fetch.max.bytes",
        ];
        for key in config.config_map().keys() {
            assert!(
                tuning.contains(key) || is_managed(key),
                "{key} is set by the sink but neither tuning nor managed"
            );
        }
    }
}
