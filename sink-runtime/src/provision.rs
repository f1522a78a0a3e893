//! Creating, checking and deleting a sink's Kafka resources: the internal topics and the
//! consumer group; reading the compacted status topic and the group's lag. One implementation,
//! used by standalone mode and by the operator.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use adbsink_crd::{InitialOffset, InternalTopic, ResourceCreation};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::kafka::KafkaConnection;

const TIMEOUT: Duration = Duration::from_secs(15);
/// Kafka's default `message.max.bytes` (1 MiB plus batch overhead), assumed for a topic whose
/// limit the broker does not report.
pub const BROKER_DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;
/// What the error headers may add to a copied record.
pub const ERROR_HEADER_ROOM: usize = 64 << 10;

/// Topics that receive copies of source records.
fn holds_copies(role: adbsink_crd::TopicRole) -> bool {
    matches!(
        role,
        adbsink_crd::TopicRole::DeadLetter | adbsink_crd::TopicRole::Error
    )
}
/// How long a topic must stay silent after its reported end before a full read is trusted.
const QUIET: Duration = Duration::from_millis(300);

/// What is wrong with one internal topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicProblem {
    pub topic: String,
    pub problem: String,
}

impl std::fmt::Display for TopicProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.topic, self.problem)
    }
}

/// Outcome of [`Provisioner::ensure_topics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicsReport {
    /// Topics created by this call.
    pub created: Vec<String>,
    /// Topics missing (Manual) or existing with settings that differ from the required ones.
    pub problems: Vec<TopicProblem>,
}

/// Outcome of [`Provisioner::ensure_group`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// The group has committed offsets (or members) already.
    Exists,
    /// The group did not exist; its initial offsets were committed now (Auto).
    Created,
    /// The group does not exist and resource creation is Manual.
    Missing,
}

/// Consumer lag of a group on one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lag {
    /// Sum over partitions; partitions without a committed offset count from the low watermark.
    pub total: i64,
    pub partitions: BTreeMap<i32, i64>,
}

/// Admin operations on the sink's Kafka cluster. Dropping it destroys its admin client (see
/// [`destroy`]).
pub struct Provisioner {
    connection: KafkaConnection,
    /// Made on first use: many callers (the operator's refreshes above all) read offsets and
    /// records only, and a client costs threads, connections and ~0.1 s to destroy.
    admin: std::sync::OnceLock<AdminClient<DefaultClientContext>>,
}

impl Drop for Provisioner {
    fn drop(&mut self) {
        if let Some(admin) = self.admin.take() {
            destroy(admin);
        }
    }
}

impl Provisioner {
    pub fn new(connection: &KafkaConnection) -> Result<Self> {
        // Checks the configuration now, as creating the client would.
        connection.client_config().create_native_config()?;
        Ok(Self {
            admin: std::sync::OnceLock::new(),
            connection: connection.clone(),
        })
    }

    fn admin(&self) -> Result<&AdminClient<DefaultClientContext>> {
        if let Some(admin) = self.admin.get() {
            return Ok(admin);
        }
        if let Err(spare) = self.admin.set(self.connection.client_config().create()?) {
            // Another call made one first.
            destroy(spare);
        }
        self.admin
            .get()
            .ok_or_else(|| Error::Config("the Kafka admin client is closed".into()))
    }

    fn options() -> AdminOptions {
        AdminOptions::new()
            .operation_timeout(Some(TIMEOUT))
            .request_timeout(Some(TIMEOUT))
    }

    /// Auto: creates the missing topics. Both modes: reports topics that are missing (Manual) or
    /// whose partition count or cleanup policy differs from what the sink requires. Existing
    /// topics are never altered: a wrong setting is the user's to fix, and is reported.
    ///
    /// Dead-letter and error topics are created to hold the largest record `source` can hold,
    /// plus room for the error headers, so a copy of any source record fits.
    pub async fn ensure_topics(
        &self,
        topics: &[InternalTopic],
        replication_factor: Option<i16>,
        creation: ResourceCreation,
        source: &str,
    ) -> Result<TopicsReport> {
        let existing = self.partition_counts(topics).await?;
        let mut report = TopicsReport::default();
        let missing: Vec<&InternalTopic> = topics
            .iter()
            .filter(|t| !existing.contains_key(&t.name))
            .collect();
        if creation == ResourceCreation::Manual {
            report.problems.extend(missing.iter().map(|t| TopicProblem {
                topic: t.name.clone(),
                problem: "does not exist (resourceCreation is Manual)".into(),
            }));
        } else if !missing.is_empty() {
            let replication = replication_factor.map_or(-1, i32::from);
            let copies = missing.iter().any(|t| holds_copies(t.role));
            let copy_limit = if copies {
                let source_limit = self
                    .max_message_bytes(&[source])
                    .await
                    .ok()
                    .and_then(|limits| limits.get(source).copied().flatten())
                    .unwrap_or(BROKER_DEFAULT_MAX_MESSAGE_BYTES);
                (source_limit + ERROR_HEADER_ROOM).to_string()
            } else {
                String::new()
            };
            let new_topics: Vec<NewTopic<'_>> = missing
                .iter()
                .map(|t| {
                    let mut topic =
                        NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(replication));
                    if t.compacted {
                        topic = topic.set("cleanup.policy", "compact");
                    }
                    if holds_copies(t.role) {
                        topic = topic.set("max.message.bytes", &copy_limit);
                    }
                    topic
                })
                .collect();
            for result in self
                .admin()?
                .create_topics(&new_topics, &Self::options())
                .await?
            {
                match result {
                    Ok(name) => report.created.push(name),
                    // Created concurrently (another replica, a retry): checked below like any other.
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((name, code)) => {
                        return Err(Error::KafkaAdmin {
                            operation: "create topic",
                            resource: name,
                            code,
                        });
                    }
                }
            }
        }
        let present: Vec<&InternalTopic> = topics
            .iter()
            .filter(|t| existing.contains_key(&t.name))
            .collect();
        let policies = self.cleanup_policies(&present).await?;
        for topic in present {
            let partitions = existing[&topic.name];
            let too_few = if topic.role == adbsink_crd::TopicRole::Config {
                partitions != 1
            } else {
                partitions < topic.partitions
            };
            if too_few {
                report.problems.push(TopicProblem {
                    topic: topic.name.clone(),
                    problem: format!(
                        "has {partitions} partitions, requires {}{}",
                        if topic.role == adbsink_crd::TopicRole::Config {
                            "exactly "
                        } else {
                            "at least "
                        },
                        topic.partitions
                    ),
                });
            }
            if topic.compacted {
                let policy = policies.get(&topic.name).cloned().flatten();
                if !policy.as_deref().is_some_and(|p| p.contains("compact")) {
                    report.problems.push(TopicProblem {
                        topic: topic.name.clone(),
                        problem: format!(
                            "cleanup.policy is {}, requires compact",
                            policy.as_deref().unwrap_or("unknown")
                        ),
                    });
                }
            }
        }
        Ok(report)
    }

    /// Deletes topics; ones already gone are not an error.
    pub async fn delete_topics(&self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        for result in self
            .admin()?
            .delete_topics(&names, &Self::options())
            .await?
        {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((name, code)) => {
                    return Err(Error::KafkaAdmin {
                        operation: "delete topic",
                        resource: name,
                        code,
                    });
                }
            }
        }
        Ok(())
    }

    /// Makes sure the consumer group exists. When it does not and creation is Auto, commits
    /// the initial offsets (low or high watermark of every source partition) once, so the
    /// initial offset policy applies exactly once in the group's life.
    pub async fn ensure_group(
        &self,
        group: &str,
        topic: &str,
        initial: InitialOffset,
        creation: ResourceCreation,
    ) -> Result<GroupState> {
        let consumer = self.group_consumer(group)?;
        let topic = topic.to_string();
        let group = group.to_string();
        blocking(consumer, move |consumer| {
            let partitions = partitions_of(consumer, &topic)?;
            let committed = committed(consumer, &topic, &partitions)?;
            if committed.values().any(Option::is_some) || group_listed(consumer, &group)? {
                return Ok(GroupState::Exists);
            }
            if creation == ResourceCreation::Manual {
                return Ok(GroupState::Missing);
            }
            let mut list = TopicPartitionList::new();
            for partition in partitions {
                let (low, high) = consumer.fetch_watermarks(&topic, partition, TIMEOUT)?;
                let start = match initial {
                    InitialOffset::Earliest => low,
                    InitialOffset::Latest => high,
                };
                list.add_partition_offset(&topic, partition, Offset::Offset(start))?;
            }
            consumer.commit(&list, CommitMode::Sync)?;
            Ok(GroupState::Created)
        })
        .await
    }

    /// Deletes the consumer group; a group that is already gone is not an error.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        for result in self
            .admin()?
            .delete_groups(&[group], &Self::options())
            .await?
        {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                Err((name, code)) => {
                    return Err(Error::KafkaAdmin {
                        operation: "delete group",
                        resource: name,
                        code,
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the group exists (listed by the coordinator).
    pub async fn group_exists(&self, group: &str) -> Result<bool> {
        let consumer = self.group_consumer(group)?;
        let group = group.to_string();
        blocking(consumer, move |consumer| group_listed(consumer, &group)).await
    }

    /// End offsets minus committed offsets, per partition, clamped at zero (some brokers report
    /// a high watermark below the true end after multi-record batches).
    pub async fn lag(&self, group: &str, topic: &str) -> Result<Lag> {
        let consumer = self.group_consumer(group)?;
        let topic = topic.to_string();
        blocking(consumer, move |consumer| {
            let partitions = partitions_of(consumer, &topic)?;
            let committed = committed(consumer, &topic, &partitions)?;
            let mut lag = Lag::default();
            for partition in partitions {
                let (low, high) = consumer.fetch_watermarks(&topic, partition, TIMEOUT)?;
                let from = committed.get(&partition).copied().flatten().unwrap_or(low);
                let behind = (high - from).max(0);
                lag.partitions.insert(partition, behind);
                lag.total += behind;
            }
            Ok(lag)
        })
        .await
    }

    /// The group's committed offset per partition of `topic` (None: nothing committed).
    pub async fn committed(&self, group: &str, topic: &str) -> Result<BTreeMap<i32, Option<i64>>> {
        let consumer = self.group_consumer(group)?;
        let topic = topic.to_string();
        blocking(consumer, move |consumer| {
            let partitions = partitions_of(consumer, &topic)?;
            Ok(committed(consumer, &topic, &partitions)?
                .into_iter()
                .collect())
        })
        .await
    }

    /// High watermark per partition of `topic`.
    pub async fn end_offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>> {
        let consumer: BaseConsumer = self.connection.client_config().create()?;
        let topic = topic.to_string();
        blocking(consumer, move |consumer| {
            let mut out = BTreeMap::new();
            for partition in partitions_of(consumer, &topic)? {
                out.insert(
                    partition,
                    consumer.fetch_watermarks(&topic, partition, TIMEOUT)?.1,
                );
            }
            Ok(out)
        })
        .await
    }

    /// Reads a compacted topic from the beginning to its current end and returns the latest
    /// record per key, for records this version understands.
    pub async fn read_latest<T: DeserializeOwned + Send + 'static>(
        &self,
        topic: &str,
    ) -> Result<BTreeMap<String, T>> {
        let consumer: BaseConsumer = self
            .connection
            .client_config()
            .set("group.id", "adbsink-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()?;
        let topic = topic.to_string();
        blocking(consumer, move |consumer| {
            let partitions = partitions_of(consumer, &topic)?;
            let mut ends = HashMap::new();
            let mut list = TopicPartitionList::new();
            for partition in partitions {
                let (low, high) = consumer.fetch_watermarks(&topic, partition, TIMEOUT)?;
                if high > low {
                    ends.insert(partition, high);
                    list.add_partition_offset(&topic, partition, Offset::Beginning)?;
                }
            }
            let mut latest = BTreeMap::new();
            if ends.is_empty() {
                return Ok(latest);
            }
            consumer.assign(&list)?;
            let deadline = std::time::Instant::now() + TIMEOUT;
            // Some brokers report a high watermark inside the last multi-record batch, so
            // reaching it proves little: read on until the topic has been quiet for a moment.
            let mut quiet_since: Option<std::time::Instant> = None;
            loop {
                if std::time::Instant::now() > deadline {
                    return Err(Error::Kafka(KafkaError::MessageConsumption(
                        RDKafkaErrorCode::OperationTimedOut,
                    )));
                }
                let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                    if ends.is_empty() {
                        let since = *quiet_since.get_or_insert_with(std::time::Instant::now);
                        if since.elapsed() >= QUIET {
                            break;
                        }
                    }
                    continue;
                };
                quiet_since = None;
                let message = message?;
                let key = message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned());
                if let (Some(key), Some(value)) =
                    (key, crate::records::parse::<T>(message.payload()))
                {
                    latest.insert(key, value);
                }
                if ends
                    .get(&message.partition())
                    .is_some_and(|end| message.offset() + 1 >= *end)
                {
                    ends.remove(&message.partition());
                }
            }
            Ok(latest)
        })
        .await
    }

    /// Publishes one JSON record and waits for the broker's acknowledgement, at most
    /// 15 s (librdkafka's own default would retry for five minutes).
    pub async fn publish<T: Serialize>(&self, topic: &str, key: &str, value: &T) -> Result<()> {
        // A producer polled by hand rather than a FutureProducer: the latter's polling thread
        // takes up to 0.1 s to notice it should stop, and start-up waited for that.
        let producer: BaseProducer<Delivery> = self
            .connection
            .client_config()
            .set("message.timeout.ms", TIMEOUT.as_millis().to_string())
            .create_with_context(Delivery::default())?;
        let payload = serde_json::to_vec(value)?;
        let (topic, key) = (topic.to_string(), key.to_string());
        blocking(producer, move |producer| {
            producer
                .send(BaseRecord::to(&topic).key(&key).payload(&payload))
                .map_err(|(e, _)| Error::Kafka(e))?;
            // Not `flush`: rdkafka's polls there run to their 0.1 s timeout even once the report
            // is in. librdkafka fails the record itself after `message.timeout.ms`.
            let deadline = std::time::Instant::now() + TIMEOUT + Duration::from_secs(1);
            loop {
                match producer.context().0.get() {
                    Some(Ok(())) => return Ok(()),
                    Some(Err(e)) => return Err(Error::Kafka(e.clone())),
                    None if std::time::Instant::now() > deadline => {
                        return Err(Error::Kafka(KafkaError::MessageProduction(
                            RDKafkaErrorCode::MessageTimedOut,
                        )));
                    }
                    None => producer.poll(Duration::from_millis(2)),
                }
            }
        })
        .await
    }

    fn group_consumer(&self, group: &str) -> Result<BaseConsumer> {
        Ok(self
            .connection
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?)
    }

    async fn partition_counts(&self, topics: &[InternalTopic]) -> Result<HashMap<String, i32>> {
        let consumer: BaseConsumer = self.connection.client_config().create()?;
        let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
        blocking(consumer, move |consumer| {
            let metadata = consumer.fetch_metadata(None, TIMEOUT)?;
            Ok(metadata
                .topics()
                .iter()
                .filter(|t| names.iter().any(|n| n == t.name()) && t.error().is_none())
                .map(|t| (t.name().to_string(), t.partitions().len() as i32))
                .collect())
        })
        .await
    }

    /// Each topic's `max.message.bytes`, where the broker reports it.
    pub async fn max_message_bytes(
        &self,
        topics: &[&str],
    ) -> Result<HashMap<String, Option<usize>>> {
        // A topic named twice makes the broker refuse the whole request.
        let mut names = topics.to_vec();
        names.sort_unstable();
        names.dedup();
        let specifiers: Vec<ResourceSpecifier<'_>> =
            names.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let mut out = HashMap::new();
        for result in self
            .admin()?
            .describe_configs(&specifiers, &Self::options())
            .await?
        {
            let Ok(resource) = result else { continue };
            if let rdkafka::admin::OwnedResourceSpecifier::Topic(name) = &resource.specifier {
                let limit = resource
                    .get("max.message.bytes")
                    .and_then(|entry| entry.value.as_deref())
                    .and_then(|v| v.parse().ok());
                out.insert(name.clone(), limit);
            }
        }
        Ok(out)
    }

    async fn cleanup_policies(
        &self,
        topics: &[&InternalTopic],
    ) -> Result<HashMap<String, Option<String>>> {
        let specifiers: Vec<ResourceSpecifier<'_>> = topics
            .iter()
            .filter(|t| t.compacted)
            .map(|t| ResourceSpecifier::Topic(&t.name))
            .collect();
        if specifiers.is_empty() {
            return Ok(HashMap::new());
        }
        let mut out = HashMap::new();
        for result in self
            .admin()?
            .describe_configs(&specifiers, &Self::options())
            .await?
        {
            let resource = result.map_err(|code| Error::KafkaAdmin {
                operation: "describe configs",
                resource: "topic".into(),
                code,
            })?;
            if let rdkafka::admin::OwnedResourceSpecifier::Topic(name) = &resource.specifier {
                let policy = resource
                    .get("cleanup.policy")
                    .and_then(|entry| entry.value.clone());
                out.insert(name.clone(), policy);
            }
        }
        Ok(out)
    }
}

/// Whether the group coordinator knows the group (with members, or only committed offsets).
fn group_listed(consumer: &BaseConsumer, group: &str) -> Result<bool> {
    let list = consumer.fetch_group_list(Some(group), TIMEOUT)?;
    Ok(list
        .groups()
        .iter()
        .any(|g| g.name() == group && g.state() != "Dead"))
}

/// Destroys a librdkafka client before returning. Destroying one waits about 0.1 s for its
/// threads, so on a multi-threaded runtime the worker's other tasks move elsewhere meanwhile.
///
/// Never in the background: a client destroyed while the caller went on to use other clients
/// crashed librdkafka 2.12 in its metadata cache (`rd_kafka_metadata_update_op`, SIGSEGV in a
/// quarter of the runs of one reconcile test).
fn destroy<T>(client: T) {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_threaded {
        tokio::task::block_in_place(|| drop(client));
    } else {
        drop(client);
    }
}

/// Runs librdkafka's blocking calls with `client` on a blocking thread, and destroys the client
/// there too: destroying one waits about 0.1 s for its threads.
async fn blocking<C: Send + 'static, T: Send + 'static>(
    client: C,
    f: impl FnOnce(&C) -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(move || {
        let result = f(&client);
        drop(client);
        result
    })
    .await
    .map_err(|e| Error::Config(format!("blocking task failed: {e}")))?
}

/// Keeps the delivery report of the one record [`Provisioner::publish`] sends.
#[derive(Default)]
struct Delivery(std::sync::OnceLock<std::result::Result<(), KafkaError>>);

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let _ = self
            .0
            .set(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

fn partitions_of(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(Error::NotReady(format!("topic {topic} does not exist")));
    };
    if let Some(err) = t.error() {
        return Err(Error::NotReady(format!(
            "topic {topic}: {:?}",
            RDKafkaErrorCode::from(err)
        )));
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

fn committed(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, Option<i64>>> {
    let mut list = TopicPartitionList::new();
    for p in partitions {
        list.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(list, TIMEOUT)?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            (e.partition(), offset)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable_broker() -> Provisioner {
        let connection = KafkaConnection {
            bootstrap_servers: "127.0.0.1:1".into(),
            ..KafkaConnection::default()
        };
        Provisioner::new(&connection).expect("admin client")
    }

    // `block_in_place` panics outside a multi-threaded runtime: each flavour must drop cleanly.
    #[test]
    fn dropped_outside_a_runtime() {
        drop(unreachable_broker());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn dropped_on_a_current_thread_runtime() {
        drop(unreachable_broker());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_on_a_multi_threaded_runtime() {
        drop(unreachable_broker());
    }

    fn mock_broker<C: rdkafka::producer::ProducerContext>(
        cluster: &rdkafka::mocking::MockCluster<'_, C>,
    ) -> Provisioner {
        let connection = KafkaConnection {
            bootstrap_servers: cluster.bootstrap_servers(),
            ..KafkaConnection::default()
        };
        Provisioner::new(&connection).expect("admin client")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publish_returns_once_the_broker_has_the_record() {
        let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("config", 1, 1).expect("topic");
        let provisioner = mock_broker(&cluster);
        provisioner
            .publish("config", "sink", &serde_json::json!({"a": 1}))
            .await
            .expect("published");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publish_reports_a_record_the_broker_rejected() {
        use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
        let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("config", 1, 1).expect("topic");
        // Not retriable, so the delivery report carries it at once.
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
        );
        let provisioner = mock_broker(&cluster);
        let err = provisioner
            .publish("config", "sink", &serde_json::json!({"a": 1}))
            .await
            .expect_err("rejected");
        assert!(
            matches!(
                err,
                Error::Kafka(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageSizeTooLarge
                ))
            ),
            "{err:?}"
        );
    }
}
