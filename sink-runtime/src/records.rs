//! The records the runtime publishes on the internal topics. The operator and the kubectl
//! plugin read them, so their JSON shape is a versioned contract:
//!
//! | topic  | key                     | value          |
//! |--------|-------------------------|----------------|
//! | status | `<sink>/<task id>`      | [`StatusRecord`] |
//! | offset | `<topic>/<partition>`   | [`OffsetRecord`] |
//! | config | `<sink>`                | [`ConfigRecord`] |
//!
//! Every value carries `version`; readers skip versions newer than they know (a rolling upgrade
//! may briefly run a newer runtime next to an older operator) instead of failing.

use adbsink_crd::AnalyticDBSinkSpec;
use serde::{Deserialize, Serialize};

/// Version of the record formats in this module.
pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    Running,
    /// A transient error (database or broker unavailable) is being retried.
    Retrying,
    Paused,
    /// Stopped by the Stop failure policy; resumes only when restarted.
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Retrying => "RETRYING",
            Self::Paused => "PAUSED",
            Self::Failed => "FAILED",
        }
    }
}

/// One consumer task's state, published on every change and periodically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRecord {
    pub version: u32,
    pub sink: String,
    pub task_id: String,
    pub state: TaskState,
    #[serde(default)]
    pub partitions: Vec<i32>,
    pub records_written: u64,
    pub records_failed: u64,
    /// Records that changed nothing on purpose: tombstones and deletes under `deletes: Ignore`,
    /// other tables' change events, DDL.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub records_skipped: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// RFC 3339.
    pub timestamp: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl StatusRecord {
    pub fn key(&self) -> String {
        format!("{}/{}", self.sink, self.task_id)
    }
}

/// The next offset to consume of one source partition, published after each database commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetRecord {
    pub version: u32,
    pub sink: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: String,
}

impl OffsetRecord {
    pub fn key(&self) -> String {
        format!("{}/{}", self.topic, self.partition)
    }
}

/// The effective configuration of a sink: its spec with defaults applied and without any
/// credential (the inline password is never part of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRecord {
    pub version: u32,
    pub sink: String,
    pub spec: AnalyticDBSinkSpec,
}

impl ConfigRecord {
    pub fn new(sink: &str, spec: &AnalyticDBSinkSpec) -> Self {
        let mut spec = spec.clone();
        spec.destination.password = None;
        Self {
            version: RECORD_VERSION,
            sink: sink.to_string(),
            spec,
        }
    }
}

/// Parses a record value, or None for a version this code does not know or a tombstone.
pub fn parse<T: for<'de> Deserialize<'de>>(payload: Option<&[u8]>) -> Option<T> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let payload = payload?;
    let versioned: Versioned = serde_json::from_slice(payload).ok()?;
    if versioned.version > RECORD_VERSION {
        return None;
    }
    serde_json::from_slice(payload).ok()
}

/// Now, as RFC 3339.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_record_round_trips_and_has_a_stable_shape() {
        let record = StatusRecord {
            version: RECORD_VERSION,
            sink: "orders".into(),
            task_id: "pod-0".into(),
            state: TaskState::Failed,
            partitions: vec![0, 3],
            records_written: 10,
            records_failed: 1,
            records_skipped: 0,
            last_error: Some("boom".into()),
            timestamp: "2026-01-01T00:00:00Z".into(),
        };
        let json = serde_json::to_value(&record).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "version": 1, "sink": "orders", "taskId": "pod-0", "state": "FAILED",
                "partitions": [0, 3], "recordsWritten": 10, "recordsFailed": 1,
                "lastError": "boom", "timestamp": "2026-01-01T00:00:00Z"
            })
        );
        let bytes = serde_json::to_vec(&record).expect("bytes");
        assert_eq!(parse::<StatusRecord>(Some(&bytes)), Some(record));
        assert_eq!(
            parse::<StatusRecord>(Some(br#"{"version": 2, "anything": true}"#)),
            None
        );
        assert_eq!(parse::<StatusRecord>(None), None);
    }

    #[test]
    fn config_record_never_carries_the_password() {
        let mut sink = adbsink_crd::from_yaml(
            r#"
apiVersion: adbsink.io/v1alpha1
kind: AnalyticDBSink
metadata: {name: s}
spec:
  source: {bootstrapServers: "b:9092", topic: t}
  destination: {instanceType: AnalyticDBForMySQL, host: h, database: d, table: t, username: u, password: hunter2}
"#,
        )
        .expect("sink");
        sink.spec.destination.password = Some("hunter2".into());
        let record = ConfigRecord::new("s", &sink.spec);
        let text = serde_json::to_string(&record).expect("json");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
