use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the operator last observed of the sink.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticDBSinkStatus {
    /// The metadata.generation this status describes. Ready means ready for this generation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Ready, TopicsReady, ConsumerGroupReady, CredentialsReady, SinkAvailable, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// ID of the AnalyticDB instance, copied from the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The internal topics as resolved from the spec and its defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<ResolvedTopics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
    /// Internal topics this sink created (and so may delete under deletionPolicy Delete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created_topics: Vec<String>,
    /// Desired sink pods.
    #[serde(default)]
    pub replicas: i32,
    /// Sink pods ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Consumer tasks as they last reported on the status topic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskStatus>,
    /// Messages in the source topic not yet committed by the consumer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Rows written by all tasks since they last started.
    #[serde(default)]
    pub records_written: i64,
    /// Messages sent to the dead-letter or error topic by all tasks since they last started.
    #[serde(default)]
    pub records_failed: i64,
    /// Records that changed nothing on purpose (tombstones or deletes under deletes: Ignore,
    /// change events of other tables, DDL), by all tasks since they last started.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub records_skipped: i64,
    /// The most recent error reported by a task or met by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The last value of the adbsink.io/restart annotation the operator acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<String>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Provisioning,
    Running,
    Paused,
    Failed,
    Deleting,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedTopics {
    pub offset: String,
    pub config: String,
    pub status: String,
    pub dead_letter: String,
    pub error: String,
}

/// One consumer task, as reported on the status topic.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// Task id, `<pod>-<thread>`.
    pub id: String,
    /// RUNNING, RETRYING, PAUSED or FAILED.
    pub state: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<i32>,
    #[serde(default)]
    pub records_written: i64,
    #[serde(default)]
    pub records_failed: i64,
    /// Records that changed nothing on purpose (see the sink's recordsSkipped).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub records_skipped: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// RFC 3339 time of the task's last report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}
