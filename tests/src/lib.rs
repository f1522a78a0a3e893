//! Shared helpers for the end-to-end tests: where the local services are (as printed by
//! `scripts/dev-services.sh env`), unique names so tests never share state, and polling with
//! deadlines instead of sleeps.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: a panic is the failure report

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Connection settings of the local services.
#[derive(Debug, Clone)]
pub struct Services {
    pub pg_url: String,
    pub mysql_url: String,
    pub kafka_bootstrap: String,
    /// `scripts/dev-services.sh`, for tests that stop and start a service.
    pub dev_services: String,
}

impl Services {
    /// Reads the settings; panics with the command to run when the services are not configured,
    /// because a silently skipped integration test proves nothing.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: start the services with `scripts/dev-services.sh up` \
                     and `eval \"$(scripts/dev-services.sh env)\"`, or run `scripts/test.sh`"
                )
            })
        };
        Self {
            pg_url: var("ADBSINK_PG_URL"),
            mysql_url: var("ADBSINK_MYSQL_URL"),
            kafka_bootstrap: var("ADBSINK_KAFKA_BOOTSTRAP"),
            dev_services: var("ADBSINK_DEV_SERVICES"),
        }
    }
}

/// A name unique to this test process and call, safe as a topic, table or sink name.
pub fn unique(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `check` until it returns `Some`, or panics after `limit` saying what was awaited.
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub mod harness;

/// Kafka helpers for tests and the demo.
pub struct Kafka {
    pub bootstrap: String,
}

impl Kafka {
    pub fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap.to_string(),
        }
    }

    pub fn config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    /// Creates a topic; an existing one is fine.
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), String> {
        self.create_topic_with(topic, partitions, &[]).await
    }

    /// Creates a topic with topic configs (e.g. `max.message.bytes`); an existing one is fine.
    pub async fn create_topic_with(
        &self,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<(), String> {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            self.config().create().map_err(|e| e.to_string())?;
        let mut topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
        for (key, value) in configs {
            topic = topic.set(key, value);
        }
        let results = admin
            .create_topics([&topic], &AdminOptions::new())
            .await
            .map_err(|e| e.to_string())?;
        for result in results {
            match result {
                Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(format!("create topic {name}: {code}")),
            }
        }
        Ok(())
    }

    /// Deletes a topic; a missing one, or a failure, is only reported (a benchmark's topics
    /// are large, and leaving one behind costs broker memory, not correctness).
    pub async fn delete_topic(&self, topic: &str) {
        use rdkafka::admin::{AdminClient, AdminOptions};
        let Ok(admin) = self
            .config()
            .create::<AdminClient<rdkafka::client::DefaultClientContext>>()
        else {
            return;
        };
        if let Err(e) = admin.delete_topics(&[topic], &AdminOptions::new()).await {
            eprintln!("cannot delete topic {topic}: {e}");
        }
    }

    /// Produces messages (key, value) round-robin over the partitions, one record per
    /// produce request so the broker's high watermark is exact.
    pub async fn produce(
        &self,
        topic: &str,
        messages: &[(Option<String>, Vec<u8>)],
    ) -> Result<(), String> {
        self.produce_to(
            topic,
            messages
                .iter()
                .map(|(k, v)| (None, k.as_deref(), v.as_slice())),
        )
        .await
    }

    /// Produces `values` to one partition as a real producer does: compressed with `codec`
    /// (librdkafka's `compression.type`) in multi-record batches, then the last value alone, so
    /// the test broker's high watermark is exact at the end.
    pub async fn produce_batched(
        &self,
        topic: &str,
        partition: i32,
        codec: &str,
        values: &[Vec<u8>],
    ) -> Result<(), String> {
        use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
        let Some((last, bulk)) = values.split_last() else {
            return Ok(());
        };
        let producer: FutureProducer = self
            .config()
            .set("compression.type", codec)
            .set("linger.ms", "100")
            .set("message.max.bytes", "16777216")
            .create()
            .map_err(|e| e.to_string())?;
        let sends: Vec<_> = bulk
            .iter()
            .map(|v| {
                producer.send(
                    FutureRecord::<(), [u8]>::to(topic)
                        .partition(partition)
                        .payload(v),
                    Duration::from_secs(30),
                )
            })
            .collect();
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| e.to_string())?;
        }
        producer
            .flush(Duration::from_secs(30))
            .map_err(|e| e.to_string())?;
        producer
            .send(
                FutureRecord::<(), [u8]>::to(topic)
                    .partition(partition)
                    .payload(last),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e.to_string())?;
        Ok(())
    }

    /// Produces messages to explicit partitions (None: the partitioner decides).
    pub async fn produce_to<'a>(
        &self,
        topic: &str,
        messages: impl IntoIterator<Item = (Option<i32>, Option<&'a str>, &'a [u8])>,
    ) -> Result<(), String> {
        self.produce_records(topic, messages.into_iter().map(|(p, k, v)| (p, k, Some(v))))
            .await
    }

    /// [`Kafka::produce_to`] with optional values: None is a tombstone.
    pub async fn produce_records<'a>(
        &self,
        topic: &str,
        messages: impl IntoIterator<Item = (Option<i32>, Option<&'a str>, Option<&'a [u8]>)>,
    ) -> Result<(), String> {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = self
            .config()
            .set("linger.ms", "0")
            .set("batch.num.messages", "1")
            .set("message.max.bytes", "16777216")
            .create()
            .map_err(|e| e.to_string())?;
        let mut pending = Vec::new();
        for (partition, key, value) in messages {
            let mut record = FutureRecord::<str, [u8]>::to(topic);
            if let Some(value) = value {
                record = record.payload(value);
            }
            if let Some(key) = key {
                record = record.key(key);
            }
            if let Some(partition) = partition {
                record = record.partition(partition);
            }
            pending.push(producer.send(record, Duration::from_secs(30)));
            if pending.len() >= 500 {
                for result in futures::future::join_all(pending.drain(..)).await {
                    result.map_err(|(e, _)| e.to_string())?;
                }
            }
        }
        for result in futures::future::join_all(pending).await {
            result.map_err(|(e, _)| e.to_string())?;
        }
        Ok(())
    }
}

/// A plain HTTP/1.1 GET; None while the server is not up yet.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}
