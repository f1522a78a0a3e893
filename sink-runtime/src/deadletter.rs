//! Records that cannot reach the table: copied to the dead-letter topic (malformed messages) or
//! the error topic (rows the table refused), unchanged, with Kafka Connect's error headers.

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;

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

/// Headers a truncated copy carries besides the error headers: `__connect.errors.topic`,
/// `.partition` and `.offset` already say where the original is.
pub const TRUNCATED: &str = "__adbsink.errors.truncated";
pub const ORIGINAL_SIZE: &str = "__adbsink.errors.original.size";

/// Room kept for the record's framing beyond key, value and headers.
const FRAMING: usize = 1024;

/// The room a copy's value may take in a topic that holds records of at most `limit` bytes:
/// None when the whole record fits.
pub fn room(original: &OwnedMessage, extra: &[(String, String)], limit: usize) -> Option<usize> {
    let key = original.key().map_or(0, <[u8]>::len);
    let value = original.payload().map_or(0, <[u8]>::len);
    let headers: usize = original.headers().map_or(0, |h| {
        h.iter()
            .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
            .sum()
    }) + extra.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let rest = key + headers + FRAMING + 64;
    (key + value + headers + FRAMING > limit).then(|| limit.saturating_sub(rest))
}

/// Whether a produce error means the record is larger than the broker or the producer take.
pub fn too_large(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge
    )
}

/// What a round of produces leaves to send again: each record not acknowledged, with the room
/// its value may take next (half of what the broker refused as too large), and the outage to
/// back off for, if any. An acknowledged record is never sent again, so a produce that fails
/// part-way duplicates nothing.
pub fn unacknowledged(
    pending: &[(usize, Option<usize>)],
    results: &[Result<(), KafkaError>],
    limit_of: impl Fn(usize) -> usize,
) -> (Vec<(usize, Option<usize>)>, Option<KafkaError>) {
    let mut unsent = Vec::new();
    let mut outage = None;
    for (&(k, room), result) in pending.iter().zip(results) {
        match result {
            Ok(()) => {}
            Err(KafkaError::MessageProduction(code)) if too_large(*code) => {
                unsent.push((k, Some(room.map_or(limit_of(k) / 2, |r| r / 2))));
            }
            Err(e) => {
                unsent.push((k, room));
                outage = Some(e.clone());
            }
        }
    }
    (unsent, outage)
}

/// A record to produce for a failed one: the original's key, value, headers and timestamp
/// with the error headers, or, given a `room`, its value cut to that many bytes and headers
/// that say so.
pub struct Outgoing<'a> {
    original: &'a OwnedMessage,
    headers: Vec<(String, String)>,
    room: Option<usize>,
}

impl<'a> Outgoing<'a> {
    pub fn new(
        original: &'a OwnedMessage,
        extra: &[(String, String)],
        room: Option<usize>,
    ) -> Self {
        let mut headers = extra.to_vec();
        if room.is_some() {
            let size = original.payload().map_or(0, <[u8]>::len);
            headers.push((TRUNCATED.into(), "true".into()));
            headers.push((ORIGINAL_SIZE.into(), size.to_string()));
        }
        Self {
            original,
            headers,
            room,
        }
    }

    pub fn record<'r>(&'r self, topic: &'r str) -> FutureRecord<'r, [u8], [u8]> {
        let mut headers = OwnedHeaders::new();
        if let Some(existing) = self.original.headers() {
            for h in existing.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        for (key, value) in &self.headers {
            headers = headers.insert(Header {
                key: key.as_str(),
                value: Some(value.as_bytes()),
            });
        }
        let mut record = FutureRecord::to(topic).headers(headers);
        if let Some(key) = self.original.key() {
            record = record.key(key);
        }
        if let Some(payload) = self.original.payload() {
            let cut = self
                .room
                .map_or(payload.len(), |room| room.min(payload.len()));
            record = record.payload(&payload[..cut]);
        }
        if let Some(ts) = self.original.timestamp().to_millis() {
            record = record.timestamp(ts);
        }
        record
    }
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
        let copy = Outgoing::new(&original, &headers, None);
        let record = copy.record("connect-error-x");
        assert_eq!(record.key, Some(&b"k"[..]));
        assert_eq!(record.payload, Some(&b"{"[..]));
        assert_eq!(record.timestamp, Some(1_700_000_000_000));
    }

    #[test]
    fn a_record_too_large_for_its_topic_is_cut_to_fit_and_says_so() {
        let value = vec![b'x'; 3 << 20];
        let original = OwnedMessage::new(
            Some(value),
            Some(b"k".to_vec()),
            "orders".into(),
            Timestamp::NotAvailable,
            0,
            7,
            None,
        );
        let extra = vec![("__connect.errors.offset".to_string(), "7".to_string())];
        assert_eq!(room(&original, &extra, 8 << 20), None, "fits whole");
        let limit = 1 << 20;
        let room = room(&original, &extra, limit).expect("too large");
        let copy = Outgoing::new(&original, &extra, Some(room));
        let record = copy.record("dlq");
        let payload = record.payload.expect("payload");
        assert_eq!(payload.len(), room);
        assert!(payload.len() + 1024 < limit);
        let headers: Vec<(String, String)> = record
            .headers
            .as_ref()
            .expect("headers")
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        assert!(headers.contains(&(TRUNCATED.into(), "true".into())));
        assert!(headers.contains(&(ORIGINAL_SIZE.into(), (3usize << 20).to_string())));
        assert!(headers.contains(&("__connect.errors.offset".into(), "7".into())));
    }

    #[test]
    fn only_what_was_not_acknowledged_is_sent_again() {
        let pending = [(0, None), (1, None), (2, Some(100)), (3, None)];
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let too_big = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let results = [Ok(()), Err(timeout.clone()), Ok(()), Err(too_big)];
        let (unsent, outage) = unacknowledged(&pending, &results, |_| 1000);
        assert_eq!(unsent, vec![(1, None), (3, Some(500))]);
        assert_eq!(outage, Some(timeout));
        let (unsent, outage) = unacknowledged(&pending, &[Ok(()), Ok(()), Ok(()), Ok(())], |_| 1);
        assert!(unsent.is_empty() && outage.is_none());
    }
}
