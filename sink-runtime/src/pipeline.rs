//! One consumer task, top to bottom: consume → batch → decode → write → dead-letter → commit.
//!
//! Two loops per task. The consume loop batches what the dispatcher (`dispatch.rs`) deals it and
//! hands full batches, and partly filled ones once they linger or their source goes quiet, to
//! the write loop. A task holds at most [`BATCHES`] batches, filling or being written; without
//! room it takes nothing, so the dispatcher holds messages back. The write loop
//! decodes, writes, routes failures, and only then commits: an offset never moves past a
//! record that did not reach the table or a dead-letter/error topic.
//!
//! The write loop writes two batches at once, each in its own transaction on its own
//! connection, so a task's next batch is written while the previous one waits for its durable
//! commit; a batch sharing a primary key with the previous one waits for it (`overlap.rs`).
//! Their offsets still commit in batch order, and none after a batch that did not finish
//! ([`writes_in_flight`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adbsink_crd::{AnalyticDBSinkSpec, FailurePolicy, UnknownFields, WriteMode};
use futures::future::join_all;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::batch::{Batch, Limits, next_offsets};
use crate::change::{Change, Decoded, Reader, Skip};
use crate::database::{Session, WriteError};
use crate::deadletter::{
    Failure, Fit, Outgoing, Stage, bounded_reason, error_headers, room, too_large, unacknowledged,
};
use crate::decode::DecodeError;
use crate::dispatch::{Event, GroupConsumer, sleep_until};
use crate::fence::Claim;
use crate::isolate::{Interrupted, RowWriter, write_isolating};
use crate::metrics::ReasonLabel;
use crate::overlap::{Predecessor, Turn, keys, pair};
use crate::records::{OffsetRecord, RECORD_VERSION, TaskState, now_rfc3339};
use crate::sink::Shared;
use crate::stats::TaskStats;
use crate::table::Table;

/// Runs one task until `shared.stop` is cancelled: batches what the dispatcher sends it,
/// writes, commits through the process's shared consumer.
pub async fn run_task(
    shared: Arc<Shared>,
    stats: Arc<TaskStats>,
    consumer: Arc<GroupConsumer>,
    events: mpsc::Receiver<Event>,
) -> crate::Result<()> {
    info!(task = %stats.id, "task started");
    let (tx, rx) = mpsc::channel(BATCHES);
    let room = Arc::new(Semaphore::new(BATCHES));
    let halt = CancellationToken::new();
    let writer = tokio::spawn(write_loop(
        shared.clone(),
        stats.clone(),
        consumer,
        rx,
        halt.clone(),
    ));
    consume_loop(&shared, events, tx, room, &halt).await;
    if let Err(e) = writer.await {
        warn!(error = %e, "write loop ended abnormally");
    }
    info!(task = %stats.id, "task stopped");
    Ok(())
}

async fn consume_loop(
    shared: &Shared,
    mut events: mpsc::Receiver<Event>,
    tx: mpsc::Sender<Taken>,
    room: Arc<Semaphore>,
    halt: &CancellationToken,
) {
    let mut batch = Batch::new(Limits::from(&shared.spec.write));
    // The last revocation this task has dropped the records of (`fence.rs`).
    let mut seen = shared.fence.seq();
    // Room for one more batch, reserved before it is filled and held until it is written:
    // the next batch is filled while the previous ones are written. Without room nothing is
    // taken and the dispatcher holds the rest back. After a Stop-policy failure nothing more
    // is taken or written: the partitions stay uncommitted until the sink is restarted.
    let mut slot: Option<OwnedSemaphorePermit> = None;
    // The batch's time is up (linger, or its source went quiet).
    let mut due = false;
    loop {
        due &= !batch.is_empty();
        if (batch.is_full() || due)
            && let Some(permit) = slot.take()
        {
            // The channel holds as many batches as there is room for: never full here.
            let _ = tx.try_send((permit, seen, batch.take()));
            due = false;
        }
        let take = slot.is_some() && !halt.is_cancelled();
        // Take what is already waiting without a wake-up or a clock read per message.
        while take && !batch.is_full() {
            match events.try_recv() {
                Ok(event) => on_event(shared, &mut batch, &mut seen, event),
                Err(_) => break,
            }
        }
        if take && batch.is_full() {
            continue;
        }
        let write_by = if take {
            batch.write_by(Instant::now())
        } else {
            None
        };
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break,
            permit = room.clone().acquire_owned(), if slot.is_none() && !halt.is_cancelled() => {
                let Ok(permit) = permit else { break };
                slot = Some(permit);
            }
            _ = sleep_until(write_by), if write_by.is_some() => due = true,
            event = events.recv(), if take => match event {
                Some(event) => on_event(shared, &mut batch, &mut seen, event),
                None => break,
            },
        }
    }
    // Shutting down: hand over what was read so it is written and committed, not re-read.
    if !batch.is_empty() && !halt.is_cancelled() {
        let permit = match slot {
            Some(permit) => Ok(permit),
            // Room comes back as the writer finishes or gives up its batches.
            None => room.acquire_owned().await,
        };
        if let Ok(permit) = permit {
            let _ = tx.send((permit, seen, batch.take())).await;
        }
    }
}

/// Batches a task holds at once, filling or being written: one filling while one is written,
/// or two written at once ([`writes_in_flight`]). More would only hold memory.
const BATCHES: usize = 2;

/// A batch for the writer: its room in the task, and the last revocation its task had seen
/// when it was taken.
type Taken = (OwnedSemaphorePermit, u64, Vec<OwnedMessage>);

fn on_event(shared: &Shared, batch: &mut Batch, seen: &mut u64, event: Event) {
    match event {
        Event::Messages(messages) => {
            shared.metrics.consumed.inc_by(messages.len() as u64);
            for message in messages {
                batch.push(message);
            }
        }
        Event::Revoked { seq, partitions } => {
            batch.drop_partitions(&partitions);
            *seen = (*seen).max(seq);
        }
    }
}

/// The partitions of a batch.
fn partitions_of(messages: &[OwnedMessage]) -> Vec<(String, i32)> {
    let mut partitions: Vec<(String, i32)> = messages
        .iter()
        .map(|m| (m.topic().to_string(), m.partition()))
        .collect();
    partitions.sort_unstable();
    partitions.dedup();
    partitions
}

/// The outcome of one batch: offsets it lets the group commit, and the reason it stopped the
/// task under the Stop policy.
struct Resolved {
    commit: BTreeMap<(String, i32), i64>,
    failed: Option<String>,
}

/// How many batches a task writes at once. Two, unless where the stream stops matters: the
/// Stop policy writes nothing at or after the first bad record, and exactly-once serialises
/// on its offsets rows anyway. The second batch never reorders a key's changes
/// (`overlap.rs`); Insert appends, so of two records with one unique key in the two batches
/// either may be the one refused.
pub fn writes_in_flight(spec: &AnalyticDBSinkSpec) -> usize {
    let overlap =
        spec.runtime.failure_policy == FailurePolicy::Continue && !spec.write.exactly_once;
    if overlap { 2 } else { 1 }
}

/// What became of a batch.
enum Outcome {
    /// Written and its failures routed: commit, then release the claim.
    Resolved(Claim, Resolved),
    /// All of its partitions were revoked first: nothing to commit.
    Revoked,
    /// Stopping during a retry: neither it nor any later batch may be committed.
    Stopped,
}

async fn write_loop(
    shared: Arc<Shared>,
    stats: Arc<TaskStats>,
    consumer: Arc<GroupConsumer>,
    mut rx: mpsc::Receiver<Taken>,
    halt: CancellationToken,
) {
    // One write until the task's first batch is done: written beside a second one it would
    // share the database with twice as many transactions, and the first row would come later.
    let mut depth = 1;
    let full = writes_in_flight(&shared.spec);
    // Outcomes come out in batch order, whichever write finishes first, so a batch's offsets
    // are committed only after every earlier batch's.
    let mut in_flight = FuturesOrdered::new();
    // The last batch taken, for the next one to wait on where they share a key.
    let mut last = Predecessor::none();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            Some(outcome) = in_flight.next() => {
                depth = full;
                match outcome {
                    Outcome::Resolved(claim, resolved) => {
                        if !finish(&shared, &stats, &consumer, claim, resolved, &halt).await {
                            return;
                        }
                    }
                    Outcome::Revoked => {}
                    Outcome::Stopped => {
                        info!(
                            "stopping during a retry: the batch is not committed and will be \
                             read again"
                        );
                        return;
                    }
                }
            }
            taken = rx.recv(), if open && in_flight.len() < depth => match taken {
                Some((room, seen, messages)) => {
                    let (progress, next) = pair();
                    let turn = Turn { progress, before: std::mem::replace(&mut last, next) };
                    let write = write_batch(&shared, &stats, &consumer, seen, messages, turn);
                    // The batch's room is free once it is written, before its offsets commit.
                    in_flight.push_back(write.inspect(move |_| drop(room)));
                }
                None => open = false,
            },
        }
    }
}

/// Writes one batch under a claim on its partitions, narrowing it to what the task still owns
/// each time a revocation interrupts a retry.
async fn write_batch(
    shared: &Shared,
    stats: &TaskStats,
    consumer: &GroupConsumer,
    seen: u64,
    mut messages: Vec<OwnedMessage>,
    mut turn: Turn,
) -> Outcome {
    let mut claim = shared.fence.claim(partitions_of(&messages));
    loop {
        // What was read of a partition before it was revoked is its new owner's to write.
        let kept = claim.narrow(seen);
        let before = messages.len();
        messages.retain(|m| {
            kept.iter()
                .any(|(t, p)| t == m.topic() && *p == m.partition())
        });
        if messages.len() < before {
            info!(
                dropped = before - messages.len(),
                "partitions revoked: their records are left to their new owner"
            );
        }
        if messages.is_empty() {
            return Outcome::Revoked;
        }
        // This write's own token: a revocation interrupts its retries and no other write's.
        let abort = claim.token().clone();
        let resolved = if shared.spec.write.exactly_once {
            resolve_exactly_once(shared, stats, &abort, consumer, &messages, &mut turn).await
        } else {
            resolve(shared, stats, &abort, &messages, None, &mut turn).await
        };
        match resolved {
            Ok(resolved) => return Outcome::Resolved(claim, resolved),
            Err(_) if shared.stop.is_cancelled() => return Outcome::Stopped,
            // A retry interrupted by a revocation: go on with what is still ours.
            Err(_) => continue,
        }
    }
}

/// Commits a resolved batch's offsets and releases its claim. Returns false once the Stop
/// policy halted the task.
async fn finish(
    shared: &Shared,
    stats: &TaskStats,
    consumer: &GroupConsumer,
    claim: Claim,
    resolved: Resolved,
    halt: &CancellationToken,
) -> bool {
    // A partition being revoked waits for this commit: it must land before it is given up.
    let revoking = claim.token().is_cancelled();
    if resolved.failed.is_some() {
        // Nothing after this commit is written until the sink is restarted: it must land.
        let mut attempt = 0;
        while let Err(e) = commit(shared, consumer, &resolved.commit, true) {
            attempt += 1;
            let error = WriteError::Transient(format!("committing offsets: {e}"));
            if !backoff(shared, stats, claim.token(), attempt, &error).await {
                break;
            }
        }
    } else if let Err(e) = commit(shared, consumer, &resolved.commit, revoking) {
        // The next batch's commit covers these partitions' offsets too.
        warn!(error = %e, "offset commit failed; the next commit covers it");
    }
    drop(claim);
    if let Some(reason) = resolved.failed {
        warn!(%reason, "failure policy Stop: task stopped before the bad record");
        stats.set_state(TaskState::Failed, Some(reason));
        halt.cancel();
        return false;
    }
    true
}

/// `write.exactlyOnce`: the batch's rows and its next offsets commit in one PostgreSQL
/// transaction, and records the table already holds (a replay after a crash or rebalance) are
/// skipped before decoding. Failed records are acknowledged by the broker before the commit.
async fn resolve_exactly_once(
    shared: &Shared,
    stats: &TaskStats,
    abort: &CancellationToken,
    consumer: &GroupConsumer,
    messages: &[OwnedMessage],
    turn: &mut Turn,
) -> Result<Resolved, Interrupted> {
    let topic = &shared.spec.source.topic;
    let mut partitions: Vec<i32> = messages.iter().map(Message::partition).collect();
    partitions.sort_unstable();
    partitions.dedup();
    let mut attempt = 0;
    let mut last_error = WriteError::Transient(String::new());
    loop {
        if attempt > 0 && !backoff(shared, stats, abort, attempt, &last_error).await {
            return Err(Interrupted::Shutdown);
        }
        attempt += 1;
        if let Err(e) = shared.ensure_offsets_table().await {
            last_error = e;
            continue;
        }
        let (session, stored) = match shared
            .database
            .begin_session(&shared.name, topic, &partitions)
            .await
        {
            Ok(begun) => begun,
            Err(e) => {
                last_error = e;
                continue;
            }
        };
        let (fresh, done): (Vec<OwnedMessage>, Vec<OwnedMessage>) =
            messages.iter().cloned().partition(|m| {
                stored
                    .get(&m.partition())
                    .is_none_or(|next| m.offset() >= *next)
            });
        if !done.is_empty() {
            info!(
                skipped = done.len(),
                "records already in the table: not written again"
            );
            seek_past(consumer, topic, &stored, &done);
        }
        let mut resolved = match resolve(shared, stats, abort, &fresh, Some(&session), turn).await {
            Ok(resolved) => resolved,
            Err(Interrupted::Shutdown) => return Err(Interrupted::Shutdown),
            Err(Interrupted::SchemaChanged(message)) => {
                shared.forget_table().await;
                last_error = WriteError::SchemaChanged(message);
                continue;
            }
        };
        for (key, next) in next_offsets(&done) {
            let entry = resolved.commit.entry(key).or_insert(next);
            *entry = (*entry).max(next);
        }
        match session.commit(&resolved.commit).await {
            Ok(()) => return Ok(resolved),
            Err(e) => last_error = e,
        }
    }
}

/// Resumes a partition where the offsets table says, once a batch showed the table ahead of
/// the group's commits (a replay after a crash or rebalance): what lies between is not read
/// again only to be skipped.
fn seek_past(
    consumer: &GroupConsumer,
    topic: &str,
    stored: &BTreeMap<i32, i64>,
    done: &[OwnedMessage],
) {
    for (partition, next) in stored {
        let last_done = done
            .iter()
            .filter(|m| m.partition() == *partition)
            .map(Message::offset)
            .max();
        if last_done.is_some_and(|last| last + 1 < *next) {
            // Asynchronous (no timeout): the dispatcher keeps polling meanwhile.
            if let Err(e) = consumer.seek(topic, *partition, Offset::Offset(*next), Duration::ZERO)
            {
                info!(partition, error = %e, "could not seek to the stored offset; skipping instead");
            }
        }
    }
}

/// Writes a batch and routes its failures; returns what may be committed. With a session
/// (exactly-once), rows go into its transaction and a lost transaction ends the call.
async fn resolve(
    shared: &Shared,
    stats: &TaskStats,
    abort: &CancellationToken,
    messages: &[OwnedMessage],
    session: Option<&Session>,
    turn: &mut Turn,
) -> Result<Resolved, Interrupted> {
    let stop_policy = shared.spec.runtime.failure_policy == FailurePolicy::Stop;
    let mut refreshed = false;
    let mut attempt = 0;
    loop {
        let table = shared.table(stats, abort).await?;
        let writer = match DbWriter::new(shared, stats, abort, &table, session) {
            Ok(writer) => writer,
            Err(error) => {
                attempt += 1;
                if !backoff(shared, stats, abort, attempt, &error).await {
                    return Err(Interrupted::Shutdown);
                }
                shared.forget_table().await;
                continue;
            }
        };
        let write = &shared.spec.write;
        let reader = Reader {
            table: &table,
            format: write.format,
            key_source: write.primary_key_source,
            deletes: write.deletes(),
            unknown: write.unknown_fields,
            instance: shared.spec.destination.instance_type,
            primary_key: &writer.primary_key,
            source_table: write
                .source_table
                .as_deref()
                .unwrap_or(&shared.spec.destination.table),
        };
        let decoded: Vec<Result<Decoded, DecodeError>> = messages
            .iter()
            .map(|m| reader.read(m.key(), m.payload()))
            .collect();
        // A key the cached table lacks may be a column added since: look once more.
        if !refreshed
            && shared.spec.write.unknown_fields == UnknownFields::Fail
            && decoded
                .iter()
                .any(|d| matches!(d, Err(DecodeError::UnknownColumn(_))))
            && shared.table_age().await > Duration::from_secs(1)
        {
            refreshed = true;
            shared.forget_table().await;
            continue;
        }
        // Under Stop only the records before the first malformed one may be written.
        let limit = if stop_policy {
            decoded
                .iter()
                .position(Result::is_err)
                .unwrap_or(decoded.len())
        } else {
            decoded.len()
        };
        // Each change with the index of its message: a message may carry several.
        let good: Vec<(usize, &Change)> = decoded[..limit]
            .iter()
            .enumerate()
            .flat_map(|(i, d)| {
                let changes = match d {
                    Ok(Decoded::Changes(changes)) => changes.as_slice(),
                    _ => &[],
                };
                changes.iter().map(move |c| (i, c))
            })
            .collect();
        let rows: Vec<&Change> = good.iter().map(|(_, c)| *c).collect();
        if turn
            .write(
                keys(&rows, &writer.primary_key, &table),
                abort,
                &shared.stop,
            )
            .await
            .is_err()
        {
            return Err(Interrupted::Shutdown);
        }
        let started = Instant::now();
        // Under Stop a refused record is isolated whole: the record of each row.
        let records: Option<Vec<usize>> =
            stop_policy.then(|| good.iter().map(|(i, _)| *i).collect());
        let isolation = match write_isolating(&writer, &rows, records.as_deref()).await {
            Err(Interrupted::SchemaChanged(message)) if session.is_some() => {
                return Err(Interrupted::SchemaChanged(message));
            }
            Err(Interrupted::SchemaChanged(message)) => {
                attempt += 1;
                let error = WriteError::SchemaChanged(message);
                if !backoff(shared, stats, abort, attempt, &error).await {
                    return Err(Interrupted::Shutdown);
                }
                shared.forget_table().await;
                continue;
            }
            other => other?,
        };
        shared
            .metrics
            .write_seconds
            .observe(started.elapsed().as_secs_f64());
        shared.metrics.batch_rows.observe(rows.len() as f64);
        // A stopped write wrote exactly the rows before the refused record.
        let written = match isolation.rejected.first() {
            Some((first, _)) if isolation.stopped => *first,
            _ => rows.len() - isolation.rejected.len(),
        };
        stats
            .written
            .fetch_add(written as u64, std::sync::atomic::Ordering::Relaxed);
        shared.metrics.written.inc_by(written as u64);

        if stop_policy {
            let first_rejected = isolation.rejected.first().map(|(i, _)| good[*i].0);
            let fail_at = first_rejected.or((limit < decoded.len()).then_some(limit));
            count_skipped(shared, stats, &decoded[..fail_at.unwrap_or(decoded.len())]);
            return Ok(match fail_at {
                None => Resolved {
                    commit: next_offsets(messages),
                    failed: None,
                },
                Some(index) => {
                    let reason = match (&decoded[index], &isolation.rejected.first()) {
                        (Err(e), _) => e.to_string(),
                        (Ok(_), Some((_, e))) => e.to_string(),
                        (Ok(_), None) => "rejected".into(),
                    };
                    let m = &messages[index];
                    Resolved {
                        commit: next_offsets(&messages[..index]),
                        failed: Some(format!(
                            "{}[{}]@{}: {reason}",
                            m.topic(),
                            m.partition(),
                            m.offset()
                        )),
                    }
                }
            });
        }

        let mut failures: Vec<(usize, Failure)> = decoded
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().err().map(|e| (i, decode_failure(e))))
            .collect();
        // A message with several changes is routed once, with its first rejection (the
        // rejections come in order, so a message's are adjacent).
        let mut last_rejected = None;
        for (i, e) in &isolation.rejected {
            let message = good[*i].0;
            if last_rejected != Some(message) {
                last_rejected = Some(message);
                failures.push((message, rejection_failure(e)));
            }
        }
        route_failures(shared, stats, abort, messages, &failures).await?;
        count_skipped(shared, stats, &decoded);
        return Ok(Resolved {
            commit: next_offsets(messages),
            failed: None,
        });
    }
}

/// Counts the records that change nothing, by reason; schema changes and truncates are logged,
/// since a copy of the source that skips them may need a hand.
fn count_skipped(shared: &Shared, stats: &TaskStats, decoded: &[Result<Decoded<'_>, DecodeError>]) {
    for d in decoded {
        let Ok(Decoded::Skipped(skip)) = d else {
            continue;
        };
        match skip {
            Skip::Ddl(kind) => info!(
                statement = kind.as_deref().unwrap_or_default(),
                "schema change event skipped: DDL is never applied to the table"
            ),
            Skip::Truncate => warn!("truncate event skipped: the table is not truncated"),
            _ => {}
        }
        shared
            .metrics
            .skipped
            .get_or_create(&ReasonLabel {
                reason: skip.as_str().to_string(),
            })
            .inc();
        stats
            .skipped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn decode_failure(error: &DecodeError) -> Failure {
    Failure {
        stage: if error.is_sink_error() {
            Stage::TaskPut
        } else {
            Stage::ValueConverter
        },
        class_name: "adbsink.JsonDecoder",
        exception: error.class_name().to_string(),
        message: bounded_reason(error.to_string()),
        sql_state: None,
    }
}

fn rejection_failure(error: &WriteError) -> Failure {
    let sql_state = match error {
        WriteError::Rejected { sql_state, .. } => sql_state.clone(),
        _ => None,
    };
    Failure {
        stage: Stage::TaskPut,
        class_name: "adbsink.AnalyticDBWriter",
        exception: "DataRejected".into(),
        message: bounded_reason(error.to_string()),
        sql_state,
    }
}

/// Produces every failed record to its topic and waits for the broker to acknowledge all of
/// them; a broker outage is retried like a database outage, and only what was not acknowledged
/// is sent again. A record larger than its topic takes goes as a truncated copy whose headers
/// say so, and where the original is: it never holds up the stream.
async fn route_failures(
    shared: &Shared,
    stats: &TaskStats,
    abort: &CancellationToken,
    messages: &[OwnedMessage],
    failures: &[(usize, Failure)],
) -> Result<(), Interrupted> {
    if failures.is_empty() {
        return Ok(());
    }
    let limits = shared.record_limits().await;
    let targets: Vec<(&str, usize)> = failures
        .iter()
        .map(|(_, failure)| match failure.stage {
            Stage::ValueConverter => (shared.topics.dead_letter.as_str(), limits.dead_letter),
            Stage::TaskPut => (shared.topics.error.as_str(), limits.error),
        })
        .collect();
    let headers: Vec<Vec<(String, String)>> = failures
        .iter()
        .map(|(i, f)| error_headers(&messages[*i], f, &shared.name, &stats.id))
        .collect();
    // Each failure not yet acknowledged, with what of it its copy carries.
    let mut pending: Vec<(usize, Fit)> = failures
        .iter()
        .enumerate()
        .map(|(k, (i, _))| (k, room(&messages[*i], &headers[k], targets[k].1)))
        .collect();
    let mut attempt = 0;
    loop {
        let copies: Vec<Outgoing<'_>> = pending
            .iter()
            .map(|&(k, fit)| Outgoing::new(&messages[failures[k].0], &headers[k], fit))
            .collect();
        let sends = pending.iter().zip(&copies).map(|(&(k, _), copy)| {
            shared
                .producer
                .send(copy.record(targets[k].0), Duration::from_secs(30))
        });
        let results: Vec<Result<(), KafkaError>> = join_all(sends)
            .await
            .into_iter()
            .map(|r| r.map(drop).map_err(|(e, _)| e))
            .collect();
        for (&(k, _), result) in pending.iter().zip(&results) {
            if matches!(result, Err(KafkaError::MessageProduction(code)) if too_large(*code)) {
                warn!(
                    topic = targets[k].0,
                    "the broker refused a failed record as too large; sending it truncated"
                );
            }
        }
        let (unsent, outage) = unacknowledged(&pending, &results, |k| targets[k].1);
        if unsent.is_empty() {
            break;
        }
        pending = unsent;
        if let Some(e) = outage {
            attempt += 1;
            let error = WriteError::Transient(format!("producing to the error topics: {e}"));
            if !backoff(shared, stats, abort, attempt, &error).await {
                return Err(Interrupted::Shutdown);
            }
        }
    }
    for (_, failure) in failures {
        warn!(
            stage = failure.stage.as_str(),
            reason = %failure.exception,
            message = %failure.message,
            "record sent to the {} topic",
            if failure.stage == Stage::ValueConverter { "dead-letter" } else { "error" }
        );
        shared
            .metrics
            .failed
            .get_or_create(&ReasonLabel {
                reason: failure.exception.clone(),
            })
            .inc();
    }
    stats
        .failed
        .fetch_add(failures.len() as u64, std::sync::atomic::Ordering::Relaxed);
    if stats.state() == TaskState::Retrying {
        stats.set_state(TaskState::Running, None);
    }
    Ok(())
}

/// Commits offsets of partitions the task still owns, and records them on the offset topic.
fn commit(
    shared: &Shared,
    consumer: &GroupConsumer,
    offsets: &BTreeMap<(String, i32), i64>,
    sync: bool,
) -> Result<(), KafkaError> {
    let owned = consumer.assignment().unwrap_or_default();
    let mut list = TopicPartitionList::new();
    for ((topic, partition), next) in offsets {
        if owned.find_partition(topic, *partition).is_some() {
            let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*next));
        }
    }
    if list.count() == 0 {
        return Ok(());
    }
    let mode = if sync {
        CommitMode::Sync
    } else {
        CommitMode::Async
    };
    consumer.commit(&list, mode)?;
    for e in list.elements() {
        let Offset::Offset(offset) = e.offset() else {
            continue;
        };
        let record = OffsetRecord {
            version: RECORD_VERSION,
            sink: shared.name.clone(),
            topic: e.topic().to_string(),
            partition: e.partition(),
            offset,
            timestamp: now_rfc3339(),
        };
        let (Ok(payload), key) = (serde_json::to_vec(&record), record.key()) else {
            continue;
        };
        // Progress reporting only: the group's commit above is the source of truth.
        let _ = shared.producer.send_result(
            FutureRecord::to(&shared.topics.offset)
                .key(&key)
                .payload(&payload),
        );
    }
    Ok(())
}

/// Waits before a retry with capped exponential backoff, showing RETRYING meanwhile.
/// Returns false when the sink is stopping, or `abort` (the batch's claim: one of its
/// partitions was revoked) is cancelled.
pub(crate) async fn backoff(
    shared: &Shared,
    stats: &TaskStats,
    abort: &CancellationToken,
    attempt: u32,
    error: &WriteError,
) -> bool {
    warn!(attempt, error = %error, "transient failure; retrying");
    stats.set_state(TaskState::Retrying, Some(error.to_string()));
    shared.metrics.retries.inc();
    let delay = Duration::from_millis(200)
        .saturating_mul(2u32.saturating_pow(attempt.min(8)))
        .min(Duration::from_secs(30));
    tokio::select! {
        _ = shared.stop.cancelled() => false,
        _ = abort.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// The database as a [`RowWriter`].
struct DbWriter<'a> {
    shared: &'a Shared,
    stats: &'a TaskStats,
    abort: &'a CancellationToken,
    table: &'a Table,
    mode: WriteMode,
    primary_key: Vec<usize>,
    session: Option<&'a Session>,
}

impl<'a> DbWriter<'a> {
    fn new(
        shared: &'a Shared,
        stats: &'a TaskStats,
        abort: &'a CancellationToken,
        table: &'a Table,
        session: Option<&'a Session>,
    ) -> Result<Self, WriteError> {
        let mode = shared.spec.write.write_mode;
        let mut primary_key = Vec::new();
        if mode == WriteMode::Upsert {
            for name in &shared.spec.write.primary_key {
                match table.column_index(name) {
                    Some(i) => primary_key.push(i),
                    None => {
                        return Err(WriteError::Transient(format!(
                            "primary key column {name:?} is not a column of the table"
                        )));
                    }
                }
            }
        }
        Ok(Self {
            shared,
            stats,
            abort,
            table,
            mode,
            primary_key,
            session,
        })
    }
}

impl RowWriter for DbWriter<'_> {
    async fn write(&self, rows: &[&Change<'_>]) -> Result<(), WriteError> {
        let result = match self.session {
            Some(session) => {
                session
                    .write(self.table, rows, self.mode, &self.primary_key)
                    .await
            }
            None => {
                self.shared
                    .database
                    .write(self.table, rows, self.mode, &self.primary_key)
                    .await
            }
        };
        if result.is_ok() && self.stats.state() == TaskState::Retrying {
            self.stats.set_state(TaskState::Running, None);
        }
        result
    }

    async fn backoff(&self, attempt: u32, error: &WriteError) -> bool {
        backoff(self.shared, self.stats, self.abort, attempt, error).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mode: WriteMode, policy: FailurePolicy, exactly_once: bool) -> AnalyticDBSinkSpec {
        let example = include_str!("../../examples/postgres-sink.yaml");
        let sink: adbsink_crd::AnalyticDBSink = serde_yaml::from_str(example).unwrap();
        let mut spec = sink.spec;
        spec.write.write_mode = mode;
        spec.runtime.failure_policy = policy;
        spec.write.exactly_once = exactly_once;
        spec
    }

    #[test]
    fn only_the_continue_policy_without_exactly_once_writes_two_batches_at_once() {
        use FailurePolicy::{Continue, Stop};
        use WriteMode::{Insert, Upsert};
        assert_eq!(writes_in_flight(&spec(Insert, Continue, false)), 2);
        assert_eq!(writes_in_flight(&spec(Upsert, Continue, false)), 2);
        for (mode, policy, exactly_once) in [
            (Upsert, Stop, false),
            (Insert, Stop, false),
            (Insert, Continue, true),
            (Upsert, Stop, true),
        ] {
            assert_eq!(
                writes_in_flight(&spec(mode, policy, exactly_once)),
                1,
                "{mode:?} {policy:?} exactly_once={exactly_once}"
            );
        }
    }
}
