//! Records that cannot reach the table: copied to the dead-letter topic (malformed messages) or
//! the error topic (rows the table refused), unchanged, with Kafka Connect's error headers.

use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;

/// Which processing step gave up on the record (Kafka Connect's `stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Decoding the value: not UTF-8, not JSON, not an object.
    ValueConverter,
    /// Mapping to columns or writing: unknown column, rejected by the database.
    TaskPut,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValueConverter => "VALUE_CONVERTER",
            Self::TaskPut => "TASK_PUT",
        }
    }
}

/// Why one record failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    /// The component that failed (`class.name`).
    pub class_name: &'static str,
    /// The kind of failure (`exception.class.name`).
    pub exception: String,
    pub message: String,
    pub sql_state: Option<String>,
}

/// The error headers Kafka Connect users already know, plus `__adbsink.errors.sql.state`.
pub fn error_headers(
    original: &OwnedMessage,
    failure: &Failure,
    sink: &str,
    task_id: &str,
) -> Vec<(String, String)> {
    let mut headers = vec![
        (
            "__connect.errors.topic".into(),
            original.topic().to_string(),
        ),
        (
            "__connect.errors.partition".into(),
            original.partition().to_string(),
        ),
        (
            "__connect.errors.offset".into(),
            original.offset().to_string(),
        ),
        ("__connect.errors.connector.name".into(), sink.to_string()),
        ("__connect.errors.task.id".into(), task_id.to_string()),
        (
            "__connect.errors.stage".into(),
            failure.stage.as_str().to_string(),
        ),
        (
            "__connect.errors.class.name".into(),
            failure.class_name.to_string(),
        ),
        (
            "__connect.errors.exception.class.name".into(),
            failure.exception.clone(),
        ),
        (
            "__connect.errors.exception.message".into(),
            failure.message.clone(),
        ),
    ];
    if let Some(state) = &failure.sql_state {
        headers.push(("__adbsink.errors.sql.state".into(), state.clone()));
    }
    headers
}

/// The record to produce: original key, value, headers and timestamp, plus the error headers.
pub fn record<'a>(
    topic: &'a str,
    original: &'a OwnedMessage,
    extra: &'a [(String, String)],
) -> FutureRecord<'a, [u8], [u8]> {
    let mut headers = OwnedHeaders::new();
    if let Some(existing) = original.headers() {
        for h in existing.iter() {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    for (key, value) in extra {
        headers = headers.insert(Header {
            key: key.as_str(),
            value: Some(value.as_bytes()),
        });
    }
    let mut record = FutureRecord::to(topic).headers(headers);
    if let Some(key) = original.key() {
        record = record.key(key);
    }
    if let Some(payload) = original.payload() {
        record = record.payload(payload);
    }
    if let Some(ts) = original.timestamp().to_millis() {
        record = record.timestamp(ts);
    }
    record
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;

    use super::*;

    #[test]
    fn headers_name_the_origin_and_the_reason() {
        let original = OwnedMessage::new(
            Some(b"{".to_vec()),
            Some(b"k".to_vec()),
            "orders".into(),
            Timestamp::CreateTime(1_700_000_000_000),
            4,
            42,
            None,
        );
        let failure = Failure {
            stage: Stage::TaskPut,
            class_name: "adbsink.AnalyticDBWriter",
            exception: "DataRejected".into(),
            message: "invalid input syntax for type integer".into(),
            sql_state: Some("22P02".into()),
        };
        let headers = error_headers(&original, &failure, "sink-a", "pod-0");
        let get = |k: &str| {
            headers
                .iter()
                .find(|(h, _)| h == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("__connect.errors.topic"), Some("orders"));
        assert_eq!(get("__connect.errors.partition"), Some("4"));
        assert_eq!(get("__connect.errors.offset"), Some("42"));
        assert_eq!(get("__connect.errors.connector.name"), Some("sink-a"));
        assert_eq!(get("__connect.errors.task.id"), Some("pod-0"));
        assert_eq!(get("__connect.errors.stage"), Some("TASK_PUT"));
        assert_eq!(
            get("__connect.errors.exception.class.name"),
            Some("DataRejected")
        );
        assert_eq!(get("__adbsink.errors.sql.state"), Some("22P02"));
        let record = record("connect-error-x", &original, &headers);
        assert_eq!(record.key, Some(&b"k"[..]));
        assert_eq!(record.timestamp, Some(1_700_000_000_000));
    }
}
