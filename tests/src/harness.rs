//! Running a sink in-process against the local services, and reading what it produced.

use std::collections::BTreeMap;
use std::time::Duration;

use adbsink_crd::{AnalyticDBSink, InstanceType};
use adbsink_runtime::provision::Provisioner;
use adbsink_runtime::sink::{self, SinkConfig};
use adbsink_runtime::standalone::{self, Credentials};
use adbsink_runtime::{KafkaConnection, Secret};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::Connection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Services;

/// The two databases the sink writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Postgres,
    MySql,
}

impl Db {
    pub fn instance_type(self) -> InstanceType {
        match self {
            Self::Postgres => InstanceType::AnalyticDBForPostgreSQL,
            Self::MySql => InstanceType::AnalyticDBForMySQL,
        }
    }

    fn url(self, services: &Services) -> &str {
        match self {
            Self::Postgres => &services.pg_url,
            Self::MySql => &services.mysql_url,
        }
    }

    /// Runs statements (`;`-separated, no `;` inside them).
    pub async fn execute(self, services: &Services, sql: &str) {
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            match self {
                Self::Postgres => {
                    let mut conn = sqlx::PgConnection::connect(self.url(services))
                        .await
                        .expect("connect");
                    sqlx::raw_sql(statement)
                        .execute(&mut conn)
                        .await
                        .expect(statement);
                }
                Self::MySql => {
                    let mut conn = sqlx::MySqlConnection::connect(self.url(services))
                        .await
                        .expect("connect");
                    sqlx::raw_sql(statement)
                        .execute(&mut conn)
                        .await
                        .expect(statement);
                }
            }
        }
    }

    /// Every row of `query`, each column cast to text by the query itself.
    pub async fn rows(self, services: &Services, query: &str) -> Vec<Vec<Option<String>>> {
        use sqlx::Row;
        match self {
            Self::Postgres => {
                let mut conn = sqlx::PgConnection::connect(self.url(services))
                    .await
                    .expect("connect");
                let rows = sqlx::query(query).fetch_all(&mut conn).await.expect(query);
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.try_get::<Option<String>, _>(i).expect("text"))
                            .collect()
                    })
                    .collect()
            }
            Self::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(self.url(services))
                    .await
                    .expect("connect");
                let rows = sqlx::query(query).fetch_all(&mut conn).await.expect(query);
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.try_get::<Option<String>, _>(i).expect("text"))
                            .collect()
                    })
                    .collect()
            }
        }
    }

    pub async fn count(self, services: &Services, table: &str) -> i64 {
        let rows = self
            .rows(
                services,
                &format!("SELECT CAST(COUNT(*) AS CHAR(20)) FROM {table}"),
            )
            .await;
        rows[0][0]
            .as_deref()
            .unwrap_or("0")
            .trim()
            .parse()
            .expect("count")
    }

    /// Host and port from the URL.
    fn endpoint(self, services: &Services) -> (String, u16) {
        let url = self.url(services);
        let after_at = url.rsplit('@').next().unwrap_or(url);
        let host_port = after_at.split('/').next().unwrap_or(after_at);
        let (host, port) = host_port.rsplit_once(':').expect("host:port");
        (host.to_string(), port.parse().expect("port"))
    }
}

/// A sink named `name` from `topic` into `table` with every other setting at its default;
/// tests change the fields they are about.
pub fn manifest(
    services: &Services,
    db: Db,
    name: &str,
    topic: &str,
    table: &str,
) -> AnalyticDBSink {
    let (host, port) = db.endpoint(services);
    let yaml = format!(
        "apiVersion: adbsink.io/v1alpha1\nkind: AnalyticDBSink\nmetadata: {{name: {name}}}\nspec:\n  \
         source: {{bootstrapServers: \"{}\", topic: \"{topic}\"}}\n  \
         destination: {{instanceType: {:?}, host: \"{host}\", port: {port}, database: adbsink, table: {table}, username: adbsink}}\n",
        services.kafka_bootstrap,
        db.instance_type(),
    );
    adbsink_crd::from_yaml(&yaml).expect("manifest")
}

/// Names for one test (sink `name`, topic `<name>-in`, table with underscores), the table
/// with `columns` (`"(id bigint, v text)"`) and a topic of `partitions`.
pub async fn table_and_topic(
    services: &Services,
    db: Db,
    prefix: &str,
    columns: &str,
    partitions: i32,
) -> (String, String, String) {
    let name = crate::unique(prefix);
    let (topic, table) = (format!("{name}-in"), name.replace('-', "_"));
    db.execute(services, &format!("CREATE TABLE {table} {columns}"))
        .await;
    crate::Kafka::new(&services.kafka_bootstrap)
        .create_topic(&topic, partitions)
        .await
        .expect("topic");
    (name, topic, table)
}

/// [`table_and_topic`] with `(id bigint [PRIMARY KEY], v text)` and 3 partitions, for the
/// id/value fixtures.
pub async fn id_value_setup(
    services: &Services,
    db: Db,
    prefix: &str,
    primary_key: bool,
) -> (String, String, String) {
    let key = if primary_key { "PRIMARY KEY" } else { "" };
    let text = if db == Db::Postgres {
        "text"
    } else {
        "VARCHAR(64)"
    };
    table_and_topic(
        services,
        db,
        prefix,
        &format!("(id bigint {key}, v {text})"),
        3,
    )
    .await
}

/// Produces `{"id": i, "v": "value i"}` for each id, to partition `i % partitions`.
pub async fn produce_ids(
    services: &Services,
    topic: &str,
    ids: std::ops::Range<i64>,
    partitions: i64,
) {
    let messages: Vec<(i32, String)> = ids
        .map(|i| {
            (
                (i % partitions) as i32,
                format!(r#"{{"id": {i}, "v": "value {i}"}}"#),
            )
        })
        .collect();
    crate::Kafka::new(&services.kafka_bootstrap)
        .produce_to(
            topic,
            messages.iter().map(|(p, m)| (Some(*p), None, m.as_bytes())),
        )
        .await
        .expect("produce");
}

/// A sink running inside the test process.
pub struct RunningSink {
    pub config: SinkConfig,
    stop: CancellationToken,
    handle: JoinHandle<adbsink_runtime::Result<()>>,
}

/// Settings that make group joins quick on the test broker.
pub fn test_consumer_properties() -> Vec<(String, String)> {
    [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "300"),
        ("topic.metadata.refresh.interval.ms", "2000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn config(sink: &AnalyticDBSink) -> SinkConfig {
    let mut config = standalone::config_from(
        sink,
        Credentials {
            password: Some(Secret::new("adbsink")),
            ..Credentials::default()
        },
    )
    .expect("valid sink");
    config.consumer_properties = test_consumer_properties();
    config.status_period = Duration::from_secs(2);
    config
}

impl RunningSink {
    /// Provisions (as standalone mode does) and starts the sink.
    pub async fn start(config: SinkConfig) -> Self {
        standalone::provision(&config).await.expect("provision");
        Self::start_without_provisioning(config)
    }

    pub fn start_without_provisioning(config: SinkConfig) -> Self {
        // RUST_LOG=info (or debug) shows the sink's own log in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(sink::run(config.clone(), stop.clone()));
        Self {
            config,
            stop,
            handle,
        }
    }

    /// Graceful stop, as on SIGTERM: must finish within 30 s.
    pub async fn stop(self) -> SinkConfig {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("sink stops within 30 s")
            .expect("sink task")
            .expect("sink ran without error");
        self.config
    }

    pub fn group(&self) -> String {
        group_of(&self.config)
    }
}

pub fn group_of(config: &SinkConfig) -> String {
    config
        .spec
        .runtime
        .consumer_group
        .clone()
        .unwrap_or_else(|| adbsink_crd::default_consumer_group(&config.name))
}

pub fn provisioner(services: &Services) -> Provisioner {
    Provisioner::new(&KafkaConnection {
        bootstrap_servers: services.kafka_bootstrap.clone(),
        ..KafkaConnection::default()
    })
    .expect("provisioner")
}

/// Committed offset per partition (None when nothing is committed).
pub async fn committed(
    services: &Services,
    group: &str,
    topic: &str,
) -> BTreeMap<i32, Option<i64>> {
    provisioner(services)
        .committed(group, topic)
        .await
        .expect("committed offsets")
}

/// Waits, a minute at most, until `group` has committed `offset` on partition 0 of `topic`.
pub async fn committed_to(services: &Services, group: &str, topic: &str, offset: i64) {
    crate::eventually(
        &format!("offset {offset} committed on {topic} partition 0"),
        std::time::Duration::from_secs(60),
        || async {
            (committed(services, group, topic).await.get(&0) == Some(&Some(offset))).then_some(())
        },
    )
    .await;
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
    pub timestamp: Option<i64>,
}

/// Reads every record of `topic` up to its current end.
pub async fn read_topic(services: &Services, topic: &str) -> Vec<Read> {
    let bootstrap = services.kafka_bootstrap.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = crate::Kafka::new(&bootstrap)
            .config()
            .set("group.id", "adbsink-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("metadata");
        let mut ends = BTreeMap::new();
        let mut list = TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            let (low, high) = consumer
                .fetch_watermarks(&topic, p.id(), Duration::from_secs(10))
                .expect("wm");
            if high > low {
                ends.insert(p.id(), high);
                list.add_partition_offset(&topic, p.id(), Offset::Beginning)
                    .expect("add");
            }
        }
        let mut out = Vec::new();
        if ends.is_empty() {
            return out;
        }
        consumer.assign(&list).expect("assign");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        // The test broker may report a high watermark inside the last multi-record batch:
        // after reaching it, read on until the topic has been quiet for half a second.
        let mut quiet_since: Option<std::time::Instant> = None;
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out reading {topic}"
            );
            let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                if ends.is_empty()
                    && quiet_since
                        .get_or_insert_with(std::time::Instant::now)
                        .elapsed()
                        > Duration::from_millis(500)
                {
                    break;
                }
                continue;
            };
            quiet_since = None;
            let m = message.expect("message");
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Read {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
                timestamp: m.timestamp().to_millis(),
            });
            if ends
                .get(&m.partition())
                .is_some_and(|end| m.offset() + 1 >= *end)
            {
                ends.remove(&m.partition());
            }
        }
        out
    })
    .await
    .expect("reader")
}

/// The `adbsink-runtime` binary next to the test's executable (`cargo build --bins` puts it
/// there).
pub fn runtime_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join("adbsink-runtime");
    assert!(
        path.exists(),
        "{} missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// `adbsink-runtime standalone` as a child process, for what only a process shows: SIGKILL,
/// exit codes, `/metrics`.
pub struct RuntimeProcess {
    child: std::process::Child,
    manifest: std::path::PathBuf,
    pub port: u16,
}

impl RuntimeProcess {
    pub fn start(sink: &AnalyticDBSink) -> Self {
        let name = sink.metadata.name.clone().unwrap_or_default();
        let manifest = std::env::temp_dir().join(format!("{name}-{}.yaml", crate::unique("m")));
        std::fs::write(&manifest, serde_yaml::to_string(sink).expect("yaml")).expect("manifest");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut command = std::process::Command::new(runtime_binary());
        command
            .args(["--http-addr", &format!("127.0.0.1:{port}")])
            .arg("standalone")
            .arg(&manifest);
        for (key, value) in test_consumer_properties() {
            command.args(["--kafka-property", &format!("{key}={value}")]);
        }
        let child = command
            .env("ADBSINK_DB_PASSWORD", "adbsink")
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("start adbsink-runtime");
        Self {
            child,
            manifest,
            port,
        }
    }

    /// A counter of the process's `/metrics`, 0 until it is there.
    pub async fn metric(&self, family: &str) -> u64 {
        let Some(text) = crate::http_get(self.port, "/metrics").await else {
            return 0;
        };
        text.lines()
            .filter(|l| l.starts_with(family))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// SIGKILL: no shutdown, nothing flushed or committed on the way out.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, and the clean exit 0 it must lead to within 30 s.
    pub async fn terminate(mut self) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "exit {status} after SIGTERM");
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit 30 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RuntimeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.manifest);
    }
}
