//! A batch of consumed messages, bounded by rows, bytes and linger time; and the offsets a
//! finished batch lets the group commit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use adbsink_crd::WriteSpec;
use rdkafka::message::{Message, OwnedMessage};

/// A batch's source is quiet after this fraction of the linger without a record.
const QUIET_FRACTION: u32 = 10;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub rows: usize,
    pub bytes: usize,
    pub linger: Duration,
}

impl From<&WriteSpec> for Limits {
    fn from(spec: &WriteSpec) -> Self {
        Self {
            rows: spec.max_batch_rows as usize,
            bytes: usize::try_from(spec.max_batch_bytes).unwrap_or(usize::MAX),
            linger: Duration::from_millis(spec.linger_ms),
        }
    }
}

#[derive(Debug)]
pub struct Batch {
    limits: Limits,
    pub messages: Vec<OwnedMessage>,
    bytes: usize,
    started: Option<Instant>,
}

impl Batch {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            messages: Vec::new(),
            bytes: 0,
            started: None,
        }
    }

    pub fn push(&mut self, message: OwnedMessage) {
        self.bytes += message.payload().map_or(0, <[u8]>::len);
        if self.started.is_none() {
            self.started = Some(Instant::now());
            // Room for a full batch at once instead of a dozen copies while it grows; pages
            // a partial batch never reaches are never touched.
            self.messages.reserve(self.limits.rows);
        }
        self.messages.push(message);
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_full(&self) -> bool {
        self.messages.len() >= self.limits.rows || self.bytes >= self.limits.bytes
    }

    /// When a partly filled batch must be written anyway.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|s| s + self.limits.linger)
    }

    /// When a partly filled batch is written if nothing more arrives after `drained` (the
    /// moment its source ran dry): at its linger deadline, or sooner after a quiet tenth of
    /// the linger. Records that arrive together are written together; a sink that has read
    /// all there is for now writes it at once instead of holding the last records for the
    /// whole linger.
    pub fn write_by(&self, drained: Instant) -> Option<Instant> {
        let deadline = self.deadline()?;
        Some(deadline.min(drained + self.limits.linger / QUIET_FRACTION))
    }

    /// Takes the oldest messages up to the limits; what is left starts the next batch.
    pub fn take(&mut self) -> Vec<OwnedMessage> {
        let mut rows = 0;
        let mut bytes = 0;
        for m in &self.messages {
            let size = m.payload().map_or(0, <[u8]>::len);
            if rows > 0 && (rows >= self.limits.rows || bytes + size > self.limits.bytes) {
                break;
            }
            rows += 1;
            bytes += size;
        }
        let rest = self.messages.split_off(rows);
        self.bytes -= bytes;
        self.started = if rest.is_empty() {
            None
        } else {
            Some(Instant::now())
        };
        std::mem::replace(&mut self.messages, rest)
    }

    /// Drops messages of partitions this consumer no longer owns: they will be consumed again
    /// from the last commit by their new owner.
    pub fn drop_partitions(&mut self, revoked: &[(String, i32)]) {
        self.messages.retain(|m| {
            !revoked
                .iter()
                .any(|(t, p)| t == m.topic() && *p == m.partition())
        });
        self.bytes = self
            .messages
            .iter()
            .map(|m| m.payload().map_or(0, <[u8]>::len))
            .sum();
        if self.messages.is_empty() {
            self.started = None;
        }
    }
}

/// Next offset to consume per (topic, partition) once `messages` are all resolved (written,
/// dead-lettered or rejected to the error topic).
pub fn next_offsets(messages: &[OwnedMessage]) -> BTreeMap<(String, i32), i64> {
    let mut out: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for m in messages {
        let next = out
            .entry((m.topic().to_string(), m.partition()))
            .or_insert(0);
        *next = (*next).max(m.offset() + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;

    use super::*;

    fn message(partition: i32, offset: i64, payload: &[u8]) -> OwnedMessage {
        OwnedMessage::new(
            Some(payload.to_vec()),
            None,
            "t".into(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    fn limits() -> Limits {
        Limits {
            rows: 3,
            bytes: 10,
            linger: Duration::from_secs(60),
        }
    }

    #[test]
    fn full_by_rows_or_bytes() {
        let mut batch = Batch::new(limits());
        batch.push(message(0, 0, b"ab"));
        batch.push(message(0, 1, b"cd"));
        assert!(!batch.is_full());
        batch.push(message(0, 2, b"e"));
        assert!(batch.is_full());
        let mut batch = Batch::new(limits());
        batch.push(message(0, 0, b"0123456789"));
        assert!(batch.is_full());
    }

    #[test]
    fn written_after_the_linger_or_a_quiet_tenth_of_it() {
        let mut batch = Batch::new(limits());
        assert_eq!(batch.write_by(Instant::now()), None, "nothing to write");
        batch.push(message(0, 0, b"a"));
        let deadline = batch.deadline().unwrap();
        // Drained right away: a tenth of the 60 s linger later.
        let drained = deadline - Duration::from_secs(60);
        assert_eq!(
            batch.write_by(drained),
            Some(drained + Duration::from_secs(6))
        );
        // Drained late: never past the linger deadline.
        let late = deadline - Duration::from_secs(1);
        assert_eq!(batch.write_by(late), Some(deadline));
    }

    #[test]
    fn take_respects_the_limits_and_keeps_the_rest() {
        let mut batch = Batch::new(limits());
        for offset in 0..7 {
            batch.push(message(0, offset, b"a"));
        }
        assert_eq!(batch.take().len(), 3);
        assert_eq!(batch.len(), 4);
        assert_eq!(
            batch.take().iter().map(|m| m.offset()).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(batch.take().len(), 1);
        assert!(batch.is_empty() && batch.deadline().is_none());
    }

    #[test]
    fn revoked_partitions_are_dropped() {
        let mut batch = Batch::new(limits());
        batch.push(message(0, 0, b"a"));
        batch.push(message(1, 0, b"b"));
        batch.drop_partitions(&[("t".into(), 0)]);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.messages[0].partition(), 1);
    }

    #[test]
    fn next_offsets_per_partition() {
        let messages = vec![message(0, 5, b""), message(1, 2, b""), message(0, 7, b"")];
        let next = next_offsets(&messages);
        assert_eq!(next[&("t".to_string(), 0)], 8);
        assert_eq!(next[&("t".to_string(), 1)], 3);
    }
}
