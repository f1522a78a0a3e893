//! Condition types and reasons, and the merge that keeps `lastTransitionTime` stable.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const TOPICS_READY: &str = "TopicsReady";
pub const CONSUMER_GROUP_READY: &str = "ConsumerGroupReady";
pub const CREDENTIALS_READY: &str = "CredentialsReady";
pub const SINK_AVAILABLE: &str = "SinkAvailable";
pub const DEGRADED: &str = "Degraded";

/// The order conditions appear in, so status diffs stay readable.
pub const ALL: [&str; 6] = [
    READY,
    TOPICS_READY,
    CONSUMER_GROUP_READY,
    CREDENTIALS_READY,
    SINK_AVAILABLE,
    DEGRADED,
];

/// One-word reasons. Ready repeats the reason of the first thing that blocks it.
pub mod reason {
    pub const READY: &str = "Ready";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const RESOURCE_CONFLICT: &str = "ResourceConflict";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    pub const CREDENTIALS_RESOLVED: &str = "CredentialsResolved";
    pub const KAFKA_UNAVAILABLE: &str = "KafkaUnavailable";
    pub const TOPICS_CREATED: &str = "TopicsCreated";
    pub const TOPICS_EXIST: &str = "TopicsExist";
    pub const TOPICS_MISSING: &str = "TopicsMissing";
    pub const TOPICS_MISCONFIGURED: &str = "TopicsMisconfigured";
    pub const GROUP_CREATED: &str = "GroupCreated";
    pub const GROUP_EXISTS: &str = "GroupExists";
    pub const GROUP_MISSING: &str = "GroupMissing";
    pub const SOURCE_TOPIC_MISSING: &str = "SourceTopicMissing";
    pub const AVAILABLE: &str = "Available";
    pub const PROGRESSING: &str = "Progressing";
    pub const PAUSED: &str = "Paused";
    pub const TASK_FAILED: &str = "TaskFailed";
    pub const NO_FAILED_TASKS: &str = "NoFailedTasks";
    pub const NOT_CHECKED: &str = "NotChecked";
    pub const DELETING: &str = "Deleting";
    pub const CLEANUP_BLOCKED: &str = "CleanupBlocked";
    pub const SECRET_CONFLICT: &str = "SecretConflict";
}

/// A condition as the pipeline decides it, before timestamps: `status` is None for Unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub status: Option<bool>,
    pub reason: &'static str,
    pub message: String,
}

impl Check {
    pub fn ok(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: Some(true),
            reason,
            message: message.into(),
        }
    }

    pub fn fail(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: Some(false),
            reason,
            message: message.into(),
        }
    }

    pub fn unknown(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: None,
            reason,
            message: message.into(),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status == Some(true)
    }

    fn status_str(&self) -> &'static str {
        match self.status {
            Some(true) => "True",
            Some(false) => "False",
            None => "Unknown",
        }
    }
}

/// Builds the conditions from this reconcile's checks. A condition keeps its previous
/// `lastTransitionTime` unless its status flipped, so "since when" survives every requeue.
pub fn merge(
    previous: &[Condition],
    checks: &[(&'static str, Check)],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Vec<Condition> {
    checks
        .iter()
        .map(|(type_, check)| {
            let status = check.status_str();
            let since = previous
                .iter()
                .find(|c| c.type_ == *type_ && c.status == status)
                .map_or(Time(now), |c| c.last_transition_time.clone());
            Condition {
                type_: (*type_).to_string(),
                status: status.to_string(),
                reason: check.reason.to_string(),
                message: check.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// Whether the conditions say `type_` is True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(seconds).expect("timestamp")
    }

    #[test]
    fn transition_time_is_kept_while_status_is_unchanged() {
        let first = merge(
            &[],
            &[(READY, Check::fail(reason::PROGRESSING, "starting"))],
            Some(1),
            at(100),
        );
        assert_eq!(first[0].last_transition_time, Time(at(100)));

        // Same status, new reason and message: still the old time.
        let second = merge(
            &first,
            &[(READY, Check::fail(reason::KAFKA_UNAVAILABLE, "broker down"))],
            Some(2),
            at(200),
        );
        assert_eq!(second[0].last_transition_time, Time(at(100)));
        assert_eq!(second[0].reason, "KafkaUnavailable");
        assert_eq!(second[0].message, "broker down");
        assert_eq!(second[0].observed_generation, Some(2));

        // Status flips: the time moves.
        let third = merge(
            &second,
            &[(READY, Check::ok(reason::READY, "ok"))],
            Some(2),
            at(300),
        );
        assert_eq!(third[0].status, "True");
        assert_eq!(third[0].last_transition_time, Time(at(300)));
    }

    #[test]
    fn unknown_is_a_status_of_its_own_and_other_types_do_not_interfere() {
        let previous = merge(
            &[],
            &[
                (READY, Check::ok(reason::READY, "")),
                (DEGRADED, Check::unknown(reason::NOT_CHECKED, "")),
            ],
            None,
            at(10),
        );
        let next = merge(
            &previous,
            &[
                (DEGRADED, Check::fail(reason::NO_FAILED_TASKS, "")),
                (READY, Check::ok(reason::READY, "")),
            ],
            None,
            at(20),
        );
        assert_eq!(next[0].type_, DEGRADED);
        assert_eq!(next[0].status, "False");
        assert_eq!(next[0].last_transition_time, Time(at(20)));
        assert_eq!(next[1].last_transition_time, Time(at(10)));
        assert!(is_true(&next, READY));
        assert!(!is_true(&next, DEGRADED));
    }
}
