//! The Kafka side of a reconcile, through the runtime's `Provisioner`: internal topics, the
//! consumer group, the config record, task records and lag. Decisions about what the results
//! mean are the pure `*_check` functions.

use adbsink_crd::{AnalyticDBSink, InternalTopic, resolved_topics};
use adbsink_runtime::provision::{GroupState, Provisioner, TopicsReport};
use adbsink_runtime::records::{ConfigRecord, StatusRecord};
use adbsink_runtime::{KafkaConnection, Secret as Credential};
use kube::ResourceExt;

use crate::conditions::{Check, reason};
use crate::dereference::Resolved;

/// Builds the `Provisioner` for a connection; tests and alternative brokers swap it.
pub type ProvisionerFactory =
    std::sync::Arc<dyn Fn(&KafkaConnection) -> adbsink_runtime::Result<Provisioner> + Send + Sync>;

/// The factory that talks to the brokers named in the spec.
pub fn default_factory() -> ProvisionerFactory {
    std::sync::Arc::new(Provisioner::new)
}

/// The sink's Kafka connection with its resolved credentials.
pub fn connection(sink: &AnalyticDBSink, resolved: &Resolved) -> KafkaConnection {
    let sasl: Option<(String, Credential)> = resolved.sasl.clone();
    KafkaConnection::from_source(&sink.spec.source, sasl, resolved.kafka_ca.clone())
}

/// Outcome of provisioning topics and group.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub topics: Check,
    pub created: Vec<String>,
    /// None when the topics are not ready (the group is not looked at then).
    pub group: Option<(Check, Option<GroupState>)>,
}

/// Creates or checks the internal topics, then (when they are fine) the consumer group.
pub async fn provision(
    provisioner: &Provisioner,
    sink: &AnalyticDBSink,
    group: &str,
) -> adbsink_runtime::Result<Provisioned> {
    let spec = &sink.spec;
    let creation = spec.runtime.resource_creation;
    let topics = InternalTopic::resolve_all(&sink.name_any(), &spec.runtime);
    let report = provisioner
        .ensure_topics(
            &topics,
            spec.runtime.replication_factor,
            creation,
            &spec.source.topic,
        )
        .await?;
    let topics_check = topics_check(&report, topics.len());
    if !topics_check.is_ok() {
        return Ok(Provisioned {
            topics: topics_check,
            created: report.created,
            group: None,
        });
    }
    let state = provisioner
        .ensure_group(
            group,
            &spec.source.topic,
            spec.source.initial_offset,
            creation,
        )
        .await;
    let group_check = match state {
        Ok(state) => (group_check(state, group), Some(state)),
        // The source topic is the user's: its absence is reported, not retried as an outage.
        Err(adbsink_runtime::Error::NotReady(why)) => (
            Check::fail(
                reason::SOURCE_TOPIC_MISSING,
                format!("cannot set up consumer group {group:?}: {why}"),
            ),
            None,
        ),
        Err(e) => return Err(e),
    };
    Ok(Provisioned {
        topics: topics_check,
        created: report.created,
        group: Some(group_check),
    })
}

/// The checks a later look would make of what `topics` and `group_check` found: what this
/// reconcile created exists from then on. A refresh that reuses a provisioning reports these.
pub fn as_found(
    sink: &AnalyticDBSink,
    group: &str,
    topics: Check,
    group_check: Option<Check>,
) -> (Check, Option<Check>) {
    let topics = if topics.reason == reason::TOPICS_CREATED {
        let total = InternalTopic::resolve_all(&sink.name_any(), &sink.spec.runtime).len();
        topics_check(&TopicsReport::default(), total)
    } else {
        topics
    };
    let group_check = group_check.map(|check| {
        if check.reason == reason::GROUP_CREATED {
            self::group_check(GroupState::Exists, group)
        } else {
            check
        }
    });
    (topics, group_check)
}

/// What the topic report means for `TopicsReady`, naming each topic and its problem.
pub fn topics_check(report: &TopicsReport, total: usize) -> Check {
    if report.problems.is_empty() {
        return if report.created.is_empty() {
            Check::ok(
                reason::TOPICS_EXIST,
                format!("all {total} internal topics exist with the required settings"),
            )
        } else {
            Check::ok(
                reason::TOPICS_CREATED,
                format!("created {}", report.created.join(", ")),
            )
        };
    }
    let message = report
        .problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    // The provisioner words a Manual-mode absence as "does not exist"; anything else is a
    // setting that differs.
    let missing = report
        .problems
        .iter()
        .any(|p| p.problem.starts_with("does not exist"));
    if missing {
        Check::fail(reason::TOPICS_MISSING, message)
    } else {
        Check::fail(reason::TOPICS_MISCONFIGURED, message)
    }
}

pub fn group_check(state: GroupState, group: &str) -> Check {
    match state {
        GroupState::Created => Check::ok(
            reason::GROUP_CREATED,
            format!("created consumer group {group:?}"),
        ),
        GroupState::Exists => Check::ok(
            reason::GROUP_EXISTS,
            format!("consumer group {group:?} exists"),
        ),
        GroupState::Missing => Check::fail(
            reason::GROUP_MISSING,
            format!("consumer group {group:?} does not exist (resourceCreation is Manual)"),
        ),
    }
}

/// Publishes the effective configuration on the config topic, keyed by the sink name.
pub async fn publish_config(
    provisioner: &Provisioner,
    sink: &AnalyticDBSink,
    record: &ConfigRecord,
) -> adbsink_runtime::Result<()> {
    let topic = resolved_topics(&sink.name_any(), &sink.spec.runtime).config;
    provisioner.publish(&topic, &sink.name_any(), record).await
}

/// The latest record of every task of this sink (status topic keys are `<sink>/<task>`).
pub async fn task_records(
    provisioner: &Provisioner,
    sink: &AnalyticDBSink,
) -> adbsink_runtime::Result<Vec<StatusRecord>> {
    let name = sink.name_any();
    let topic = resolved_topics(&name, &sink.spec.runtime).status;
    let prefix = format!("{name}/");
    Ok(provisioner
        .read_latest::<StatusRecord>(&topic)
        .await?
        .into_iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .map(|(_, record)| record)
        .collect())
}

/// Keeps the tasks of pods that still exist: the compacted topic remembers every pod that ever
/// ran, and a FAILED task of a replaced pod must not keep the sink Degraded.
pub fn live_tasks(records: Vec<StatusRecord>, pods: &[String]) -> Vec<StatusRecord> {
    records
        .into_iter()
        .filter(|r| {
            pods.iter().any(|pod| {
                r.task_id == *pod
                    || r.task_id
                        .strip_prefix(pod.as_str())
                        .is_some_and(|rest| rest.starts_with('-'))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use adbsink_runtime::provision::TopicProblem;
    use adbsink_runtime::records::TaskState;

    fn problem(topic: &str, problem: &str) -> TopicProblem {
        TopicProblem {
            topic: topic.into(),
            problem: problem.into(),
        }
    }

    #[test]
    fn topic_reports_become_reasons_that_name_each_topic() {
        let created = TopicsReport {
            created: vec!["a".into(), "b".into()],
            problems: vec![],
        };
        let check = topics_check(&created, 5);
        assert_eq!((check.status, check.reason), (Some(true), "TopicsCreated"));
        assert_eq!(check.message, "created a, b");
        assert_eq!(
            topics_check(&TopicsReport::default(), 5).reason,
            "TopicsExist"
        );

        let missing = TopicsReport {
            created: vec![],
            problems: vec![
                problem(
                    "connect-offset-s",
                    "does not exist (resourceCreation is Manual)",
                ),
                problem(
                    "connect-status-s",
                    "cleanup.policy is delete, requires compact",
                ),
            ],
        };
        let check = topics_check(&missing, 5);
        assert_eq!((check.status, check.reason), (Some(false), "TopicsMissing"));
        assert!(
            check.message.contains("connect-offset-s: does not exist"),
            "{}",
            check.message
        );
        assert!(
            check.message.contains("connect-status-s: cleanup.policy"),
            "{}",
            check.message
        );

        let wrong = TopicsReport {
            created: vec![],
            problems: vec![problem(
                "connect-offset-s",
                "has 1 partitions, requires at least 12",
            )],
        };
        assert_eq!(topics_check(&wrong, 5).reason, "TopicsMisconfigured");
    }

    #[test]
    fn group_states_become_reasons() {
        assert_eq!(group_check(GroupState::Created, "g").reason, "GroupCreated");
        assert_eq!(group_check(GroupState::Exists, "g").reason, "GroupExists");
        let missing = group_check(GroupState::Missing, "g");
        assert_eq!(
            (missing.status, missing.reason),
            (Some(false), "GroupMissing")
        );
    }

    #[test]
    fn only_tasks_of_live_pods_are_kept() {
        let record = |task: &str| StatusRecord {
            version: 1,
            sink: "s".into(),
            task_id: task.into(),
            state: TaskState::Running,
            partitions: vec![],
            records_written: 0,
            records_failed: 0,
            records_skipped: 0,
            last_error: None,
            timestamp: "2026-01-01T00:00:00Z".into(),
        };
        let records = vec![
            record("s-sink-a-0"),
            record("s-sink-a-1"),
            record("s-sink-b-0"),
            record("s-sink-ab-0"),
        ];
        let kept: Vec<String> = live_tasks(records, &["s-sink-a".into()])
            .into_iter()
            .map(|r| r.task_id)
            .collect();
        assert_eq!(
            kept,
            vec!["s-sink-a-0".to_string(), "s-sink-a-1".to_string()]
        );
    }

    #[test]
    fn what_was_created_is_reported_as_existing_on_the_next_look() {
        let sink = crate::build::testing::sink("orders");
        let created = topics_check(
            &TopicsReport {
                created: vec!["connect-offset-orders".into()],
                problems: vec![],
            },
            4,
        );
        let (topics, group) = as_found(
            &sink,
            "connect-orders",
            created,
            Some(group_check(GroupState::Created, "connect-orders")),
        );
        assert_eq!(topics.reason, reason::TOPICS_EXIST);
        assert_eq!(group.map(|g| g.reason), Some(reason::GROUP_EXISTS));
    }
}
