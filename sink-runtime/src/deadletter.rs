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

/// Bytes of a failure's reason kept in headers and logs. A database quotes the value it
/// refused, which may be the whole record: a reason is for people, the record is in the copy.
pub const MAX_REASON_BYTES: usize = 4096;

/// `reason` cut to [`MAX_REASON_BYTES`] at a character boundary, saying how long it was.
pub fn bounded_reason(reason: String) -> String {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (cut, {} bytes in all)", &reason[..end], reason.len())
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

/// How much of a failed record its copy carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Key, value and headers as they were.
    Whole,
    /// The value cut to this many bytes.
    Cut(usize),
    /// Only the error headers, which say where the original is: for a record whose key or
    /// headers alone are more than its topic takes.
    Bare,
}

/// What of `original` fits a topic that holds records of at most `limit` bytes.
pub fn room(original: &OwnedMessage, extra: &[(String, String)], limit: usize) -> Fit {
    let key = original.key().map_or(0, <[u8]>::len);
    let value = original.payload().map_or(0, <[u8]>::len);
    let headers: usize = original.headers().map_or(0, |h| {
        h.iter()
            .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
            .sum()
    }) + extra.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let rest = key + headers + FRAMING + 64;
    if key + value + headers + FRAMING <= limit {
        Fit::Whole
    } else if rest < limit {
        Fit::Cut(limit - rest)
    } else {
        Fit::Bare
    }
}

/// Whether a produce error means the record is larger than the broker or the producer take.
pub fn too_large(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge
    )
}

/// What a round of produces leaves to send again: each record not acknowledged, with what of
/// it to send next (half of what the broker refused as too large, then the bare headers), and
/// the outage to back off for, if any. An acknowledged record is never sent again, so a produce
/// that fails part-way duplicates nothing. Every refusal as too large sends less the next time
/// until only the headers are left; a topic too small even for those is an outage, backed off
/// and reported like a broker that is down, never a loop.
pub fn unacknowledged(
    pending: &[(usize, Fit)],
    results: &[Result<(), KafkaError>],
    limit_of: impl Fn(usize) -> usize,
) -> (Vec<(usize, Fit)>, Option<KafkaError>) {
    let mut unsent = Vec::new();
    let mut outage = None;
    for (&(k, fit), result) in pending.iter().zip(results) {
        match result {
            Ok(()) => {}
            Err(KafkaError::MessageProduction(code)) if too_large(*code) => {
                let smaller = match fit {
                    Fit::Whole => Fit::Cut(limit_of(k) / 2),
                    Fit::Cut(room) if room > 0 => Fit::Cut(room / 2),
                    Fit::Cut(_) | Fit::Bare => Fit::Bare,
                };
                if fit == Fit::Bare {
                    outage = Some(KafkaError::MessageProduction(*code));
                }
                unsent.push((k, smaller));
            }
            Err(e) => {
                unsent.push((k, fit));
                outage = Some(e.clone());
            }
        }
    }
    (unsent, outage)
}

/// A record to produce for a failed one: the original's key, value, headers and timestamp
/// with the error headers, or as much of it as [`Fit`] says, with headers that say so.
pub struct Outgoing<'a> {
    original: &'a OwnedMessage,
    headers: Vec<(String, String)>,
    fit: Fit,
}

impl<'a> Outgoing<'a> {
    pub fn new(original: &'a OwnedMessage, extra: &[(String, String)], fit: Fit) -> Self {
        let mut headers = extra.to_vec();
        if fit != Fit::Whole {
            let size = original.payload().map_or(0, <[u8]>::len);
            headers.push((TRUNCATED.into(), "true".into()));
            headers.push((ORIGINAL_SIZE.into(), size.to_string()));
        }
        Self {
            original,
            headers,
            fit,
        }
    }

    pub fn record<'r>(&'r self, topic: &'r str) -> FutureRecord<'r, [u8], [u8]> {
        let mut headers = OwnedHeaders::new();
        let bare = self.fit == Fit::Bare;
        if let Some(existing) = self.original.headers().filter(|_| !bare) {
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
        if let Some(key) = self.original.key().filter(|_| !bare) {
            record = record.key(key);
        }
        if let Some(payload) = self.original.payload() {
            let cut = match self.fit {
                Fit::Whole => payload.len(),
                Fit::Cut(room) => room.min(payload.len()),
                Fit::Bare => 0,
            };
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
        let copy = Outgoing::new(&original, &headers, Fit::Whole);
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
        assert_eq!(room(&original, &extra, 8 << 20), Fit::Whole, "fits whole");
        let limit = 1 << 20;
        let Fit::Cut(room) = room(&original, &extra, limit) else {
            panic!("too large")
        };
        let copy = Outgoing::new(&original, &extra, Fit::Cut(room));
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
        let pending = [
            (0, Fit::Whole),
            (1, Fit::Whole),
            (2, Fit::Cut(100)),
            (3, Fit::Whole),
        ];
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let too_big = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let results = [Ok(()), Err(timeout.clone()), Ok(()), Err(too_big)];
        let (unsent, outage) = unacknowledged(&pending, &results, |_| 1000);
        assert_eq!(unsent, vec![(1, Fit::Whole), (3, Fit::Cut(500))]);
        assert_eq!(outage, Some(timeout));
        let (unsent, outage) = unacknowledged(&pending, &[Ok(()), Ok(()), Ok(()), Ok(())], |_| 1);
        assert!(unsent.is_empty() && outage.is_none());
    }

    #[test]
    fn a_copy_refused_again_and_again_shrinks_to_its_headers_then_backs_off() {
        let too_big = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let mut pending = vec![(0, Fit::Whole)];
        let mut rounds = 0;
        let outage = loop {
            let (unsent, outage) = unacknowledged(&pending, &[Err(too_big.clone())], |_| 1 << 20);
            rounds += 1;
            pending = unsent;
            if outage.is_some() {
                break outage;
            }
            assert!(rounds < 40, "never gave up shrinking: {pending:?}");
        };
        assert_eq!(pending, vec![(0, Fit::Bare)]);
        assert_eq!(
            outage,
            Some(too_big),
            "a bare copy refused is an outage, backed off"
        );
    }

    #[test]
    fn a_record_whose_key_and_headers_alone_are_too_large_goes_bare() {
        let original = OwnedMessage::new(
            Some(b"{}".to_vec()),
            Some(vec![b'k'; 2 << 20]),
            "orders".into(),
            Timestamp::NotAvailable,
            0,
            7,
            Some(OwnedHeaders::new().insert(Header {
                key: "trace",
                value: Some(&b"t"[..]),
            })),
        );
        let extra = vec![("__connect.errors.offset".to_string(), "7".to_string())];
        assert_eq!(room(&original, &extra, 1 << 20), Fit::Bare);
        let copy = Outgoing::new(&original, &extra, Fit::Bare);
        let record = copy.record("dlq");
        assert_eq!(record.key, None);
        assert_eq!(record.payload, Some(&b""[..]));
        let keys: Vec<&str> = record
            .headers
            .as_ref()
            .expect("headers")
            .iter()
            .map(|h| h.key)
            .collect();
        assert!(!keys.contains(&"trace"), "{keys:?}");
        assert!(keys.contains(&"__connect.errors.offset") && keys.contains(&TRUNCATED));
    }

    #[test]
    fn a_reason_quoting_a_huge_value_is_cut() {
        let short = "invalid input syntax for type integer".to_string();
        assert_eq!(bounded_reason(short.clone()), short);
        let huge = format!(
            "invalid input syntax for type integer: \"{}\"",
            "é".repeat(1 << 20)
        );
        let cut = bounded_reason(huge.clone());
        assert!(cut.len() < MAX_REASON_BYTES + 64, "{}", cut.len());
        assert!(cut.starts_with("invalid input syntax"));
        assert!(
            cut.ends_with(&format!(", {} bytes in all)", huge.len())),
            "{cut}"
        );
    }
}
