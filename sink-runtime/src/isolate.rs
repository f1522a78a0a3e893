//! Writing a batch so that one bad row cannot hold back the good ones: a run the database
//! rejects is split in halves, left half first, until every rejected row stands alone.

use crate::change::Change;
use crate::database::WriteError;

/// Where rows go; the real one is the database, tests use a fake.
pub trait RowWriter {
    fn write(&self, rows: &[&Change<'_>]) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// Waits before retrying after a transient error; false means give up (shutting down).
    fn backoff(&self, attempt: u32, error: &WriteError) -> impl Future<Output = bool> + Send;
}

/// How a batch ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Isolation {
    /// Rows the database refused, by index, in ascending order.
    pub rejected: Vec<(usize, WriteError)>,
    /// Set when `stop_at_first` met a rejection: rows before `rejected[0]` were written, rows
    /// after it were not attempted.
    pub stopped: bool,
}

/// Why isolation ended early.
#[derive(Debug, PartialEq, Eq)]
pub enum Interrupted {
    /// Shutting down while retrying: nothing after the last committed run was written.
    Shutdown,
    /// The table changed under us; rows must be decoded again.
    SchemaChanged(String),
}

/// Writes `rows`, isolating the ones the database rejects. Transient errors are retried without
/// end (until shutdown); every run is one transaction, so a retried run is never half-written.
///
/// Under the Stop policy `stop_at` holds the record each row came from (a record's rows side by
/// side: a Debezium update that moves a key is a delete and a write, a Canal message one row
/// per image). The first refused record ends the write, isolated whole: none of its rows is
/// written, so nothing at or after it reaches the table. Runs are written left first, so what
/// is written then is exactly the rows before it.
pub async fn write_isolating<W: RowWriter>(
    writer: &W,
    rows: &[&Change<'_>],
    stop_at: Option<&[usize]>,
) -> Result<Isolation, Interrupted> {
    let mut out = Isolation::default();
    let mut pending = vec![(0, rows.len())];
    while let Some((start, end)) = pending.pop() {
        if start == end {
            continue;
        }
        let mut attempt = 0;
        loop {
            match writer.write(&rows[start..end]).await {
                Ok(()) => break,
                Err(WriteError::SchemaChanged(message)) => {
                    return Err(Interrupted::SchemaChanged(message));
                }
                Err(error @ WriteError::Transient(_)) => {
                    attempt += 1;
                    if !writer.backoff(attempt, &error).await {
                        return Err(Interrupted::Shutdown);
                    }
                }
                // Smaller statements: a run too big for the server is split like a rejected
                // one, and a single row too big is rejected.
                Err(error @ (WriteError::Rejected { .. } | WriteError::TooLarge(_))) => {
                    let alone = match stop_at {
                        Some(records) => records[start] == records[end - 1],
                        None => end - start == 1,
                    };
                    if alone {
                        let error = match error {
                            WriteError::TooLarge(message) => WriteError::Rejected {
                                message: format!(
                                    "the row alone is too large for the server: {message}"
                                ),
                                sql_state: None,
                            },
                            other => other,
                        };
                        out.rejected.push((start, error));
                        if stop_at.is_some() {
                            out.stopped = true;
                            return Ok(out);
                        }
                    } else {
                        let mid = middle(start, end, stop_at);
                        pending.push((mid, end));
                        pending.push((start, mid));
                    }
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Where to halve `start..end`: its middle, moved to a record's first row when runs must hold
/// whole records (the range then holds at least two).
fn middle(start: usize, end: usize, records: Option<&[usize]>) -> usize {
    let mut mid = start + (end - start) / 2;
    if let Some(records) = records {
        while mid > start && records[mid - 1] == records[mid] {
            mid -= 1;
        }
        if mid == start {
            mid = start + 1;
            while mid < end && records[mid] == records[start] {
                mid += 1;
            }
        }
    }
    mid
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Rejects any run containing a row whose first value is "bad"; fails transiently for the
    /// first `outages` calls; records what it wrote.
    struct Fake {
        outages: Mutex<u32>,
        written: Mutex<Vec<String>>,
        calls: Mutex<u32>,
    }

    impl Fake {
        fn new(outages: u32) -> Self {
            Self {
                outages: Mutex::new(outages),
                written: Mutex::default(),
                calls: Mutex::default(),
            }
        }
    }

    impl RowWriter for Fake {
        async fn write(&self, rows: &[&Change<'_>]) -> Result<(), WriteError> {
            *self.calls.lock().unwrap() += 1;
            let mut outages = self.outages.lock().unwrap();
            if *outages > 0 {
                *outages -= 1;
                return Err(WriteError::Transient("down".into()));
            }
            let values: Vec<String> = rows
                .iter()
                .map(|c| c.row.get(0).flatten().unwrap_or_default().to_string())
                .collect();
            if values.iter().any(|v| v.starts_with("bad")) {
                return Err(WriteError::Rejected {
                    message: "no".into(),
                    sql_state: None,
                });
            }
            self.written.lock().unwrap().extend(values);
            Ok(())
        }

        async fn backoff(&self, _attempt: u32, _error: &WriteError) -> bool {
            true
        }
    }

    fn rows(values: &[&str]) -> Vec<Change<'static>> {
        values
            .iter()
            .map(|v| Change {
                op: crate::change::Op::Write,
                row: [(0, Some(*v))].into_iter().collect(),
            })
            .collect()
    }

    #[tokio::test]
    async fn continue_writes_every_good_row_and_isolates_each_bad_one() {
        let rows = rows(&["a", "bad1", "b", "c", "d", "bad2", "e"]);
        let refs: Vec<&Change<'_>> = rows.iter().collect();
        let fake = Fake::new(0);
        let out = write_isolating(&fake, &refs, None).await.unwrap();
        assert_eq!(
            out.rejected.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 5]
        );
        assert!(!out.stopped);
        let mut written = fake.written.lock().unwrap().clone();
        written.sort();
        assert_eq!(written, vec!["a", "b", "c", "d", "e"]);
    }

    #[tokio::test]
    async fn stop_writes_exactly_the_rows_before_the_first_bad_one() {
        let rows = rows(&["a", "b", "c", "bad1", "d", "bad2"]);
        let refs: Vec<&Change<'_>> = rows.iter().collect();
        let fake = Fake::new(0);
        let records: Vec<usize> = (0..refs.len()).collect();
        let out = write_isolating(&fake, &refs, Some(&records)).await.unwrap();
        assert_eq!(
            out.rejected.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![3]
        );
        assert!(out.stopped);
        assert_eq!(*fake.written.lock().unwrap(), vec!["a", "b", "c"]);
    }

    #[tokio::test]
    async fn transient_errors_are_retried_without_losing_or_rejecting_rows() {
        let rows = rows(&["a", "b"]);
        let refs: Vec<&Change<'_>> = rows.iter().collect();
        let fake = Fake::new(3);
        let out = write_isolating(&fake, &refs, None).await.unwrap();
        assert_eq!(out, Isolation::default());
        assert_eq!(*fake.written.lock().unwrap(), vec!["a", "b"]);
        assert_eq!(*fake.calls.lock().unwrap(), 4);
    }

    #[tokio::test]
    async fn stop_writes_nothing_of_a_refused_record_that_carries_several_rows() {
        // Record 1 is a key move: the delete of the old row ("a1") and a write the database
        // refuses. Bisecting by row wrote "a1" and then stopped: the table lost the old row.
        let rows = rows(&["z", "a1", "bad", "c", "d"]);
        let refs: Vec<&Change<'_>> = rows.iter().collect();
        let records = [0, 1, 1, 2, 3];
        let fake = Fake::new(0);
        let out = write_isolating(&fake, &refs, Some(&records)).await.unwrap();
        assert_eq!(
            out.rejected.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1],
            "the record's first row"
        );
        assert!(out.stopped);
        assert_eq!(*fake.written.lock().unwrap(), vec!["z"]);
    }

    #[test]
    fn halves_fall_between_records() {
        let records = [0, 1, 1, 1, 2];
        assert_eq!(middle(0, 5, None), 2);
        assert_eq!(middle(0, 5, Some(&records)), 1);
        assert_eq!(middle(1, 5, Some(&records)), 4);
        assert_eq!(middle(0, 2, Some(&[0, 1])), 1);
    }
}
