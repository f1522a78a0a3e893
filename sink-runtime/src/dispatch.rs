//! One consumer, so one group member, per process; its messages are dealt to the process's
//! tasks by partition.
//!
//! Why one member and not one per task: every member is a librdkafka instance with its own
//! threads, fetch buffers and prefetch queue (the bulk of a pod's memory), and every member
//! joins, syncs and leaves the group on its own. Several members leaving at once is what
//! rebalances churn on, and on Tansu it can leave the group with a departed leader, so the
//! next start never gets an assignment.
//!
//! Each partition always goes to the same task (`partition % tasks`), so a partition's records
//! stay in order and in one writer across rebalances. Messages go to a task in chunks of what
//! the consumer had ready (a channel send and a wake-up per message cost more than the task's
//! own work on it). Revocations travel down the same channel as the messages, so a task drops
//! what it buffered of a revoked partition in order.
//!
//! Backpressure: when a task's channel is full the dispatcher stops taking messages, which
//! leaves librdkafka's bounded prefetch intact; pausing a partition would throw it away. Only a
//! task blocked for [`BLOCKED_PAUSE`] (a database outage, a Stop-policy halt) gets its
//! partitions paused, so the dispatcher keeps polling: the group keeps the member, rebalances
//! are served and the other tasks keep going.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::fence::{Fence, blocking};
use crate::stats::TaskStats;

/// How long a task may hold up the dispatcher before its partitions are paused; well under
/// `max.poll.interval.ms`.
pub const BLOCKED_PAUSE: Duration = Duration::from_secs(5);

/// Messages dealt to a task at once: one channel send and at most one wake-up per chunk, not
/// per message.
const CHUNK: usize = 256;

/// What a task receives, in partition order.
#[derive(Debug)]
pub enum Event {
    /// Consecutive messages of the task's partitions.
    Messages(Vec<OwnedMessage>),
    /// The group took these partitions away (revocation number `seq`, `fence.rs`): drop what
    /// is buffered of them, unwritten. Their new owner reads them again from the last commit.
    Revoked {
        seq: u64,
        partitions: Vec<(String, i32)>,
    },
}

/// The task that owns a partition.
pub fn owner(partition: i32, tasks: usize) -> usize {
    let tasks = i64::try_from(tasks.max(1)).unwrap_or(i64::MAX);
    usize::try_from(i64::from(partition).rem_euclid(tasks)).unwrap_or(0)
}

/// Partitions of `assigned` that task `task` of `tasks` owns, sorted.
pub fn owned_by(assigned: &[i32], task: usize, tasks: usize) -> Vec<i32> {
    let mut owned: Vec<i32> = assigned
        .iter()
        .copied()
        .filter(|p| owner(*p, tasks) == task)
        .collect();
    owned.sort_unstable();
    owned
}

/// Rebalance bookkeeping: what was revoked (for the dispatcher to pass on) and which
/// partitions each task owns (for the status topic).
pub struct GroupContext {
    /// The last revocation's number and every partition revoked since the dispatcher looked.
    revoked: Mutex<(u64, Vec<(String, i32)>)>,
    tasks: Vec<Arc<TaskStats>>,
    fence: Arc<Fence>,
}

/// How long a revocation waits for the writes in flight on its partitions; the group's
/// rebalance waits meanwhile.
const REVOKE_WAIT: Duration = Duration::from_secs(30);

impl GroupContext {
    pub fn new(tasks: Vec<Arc<TaskStats>>, fence: Arc<Fence>) -> Self {
        Self {
            revoked: Mutex::default(),
            tasks,
            fence,
        }
    }

    fn take_revoked(&self) -> (u64, Vec<(String, i32)>) {
        let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        (revoked.0, std::mem::take(&mut revoked.1))
    }
}

impl ClientContext for GroupContext {
    /// librdkafka's log, in the sink's log. An offset reset is said loudly: the partition's
    /// committed offset has left the log (retention) and the sink resumes at the oldest record
    /// still there.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if fac == "OFFSET" && log_message.contains("offset reset") {
            warn!(
                detail = log_message,
                "a committed offset is no longer in the log: resuming at the oldest record \
                 still there; the records in between were deleted by the broker before they \
                 were consumed"
            );
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => error!(facility = fac, "{log_message}"),
            RDKafkaLogLevel::Warning => warn!(facility = fac, "{log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => debug!(facility = fac, "{log_message}"),
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions: Vec<(String, i32)> = list
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            // librdkafka gives the partitions up when this returns: the writes in flight on
            // them finish and commit first, and none read before now is written later.
            let seq = blocking(|| self.fence.revoke(&partitions, REVOKE_WAIT));
            let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
            revoked.0 = seq;
            revoked.1.extend(partitions);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let assigned: Vec<i32> = match rebalance {
            Rebalance::Assign(list) => {
                report_uncommitted(consumer, list);
                list.elements().iter().map(|e| e.partition()).collect()
            }
            Rebalance::Revoke(_) => Vec::new(),
            Rebalance::Error(e) => {
                warn!(error = %e, "rebalance failed");
                return;
            }
        };
        for (i, task) in self.tasks.iter().enumerate() {
            task.set_partitions(owned_by(&assigned, i, self.tasks.len()));
        }
    }
}

/// Says which newly assigned partitions have no committed offset: they start at their oldest
/// record (`initialOffset` applied once, when the group was created).
fn report_uncommitted(consumer: &BaseConsumer<GroupContext>, assigned: &TopicPartitionList) {
    match consumer.committed_offsets(assigned.clone(), COMMITTED_TIMEOUT) {
        Ok(committed) => {
            for e in committed.elements() {
                if !matches!(e.offset(), Offset::Offset(_)) {
                    warn!(
                        topic = e.topic(),
                        partition = e.partition(),
                        "partition has no committed offset: starting at its oldest record"
                    );
                }
            }
        }
        Err(e) => debug!(error = %e, "reading the committed offsets of the assignment"),
    }
}

/// Bounds the committed-offsets lookup in the rebalance callback, which holds up polling.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(5);

pub type GroupConsumer = StreamConsumer<GroupContext>;

/// One task's side of the dispatcher: its channel, and what waits for room in it.
struct Lane {
    tx: mpsc::Sender<Event>,
    /// The chunk being dealt; it joins the stash once full or once the consumer has nothing
    /// more ready.
    chunk: Vec<OwnedMessage>,
    stash: VecDeque<Event>,
    /// Since when the stash has been waiting for room.
    blocked_since: Option<Instant>,
    /// The partitions paused for this lane, to resume exactly those (an application pause
    /// outlives a revoke and a new assignment of the same partition).
    paused: Option<TopicPartitionList>,
    /// The task has ended: nothing it is sent would be written.
    closed: bool,
}

impl Lane {
    /// Moves stashed events into the channel while it has room; resumes the lane's partitions
    /// once the stash is empty.
    fn flush(&mut self, consumer: &GroupConsumer) {
        while let Some(event) = self.stash.pop_front() {
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.stash.push_front(event);
                    self.blocked_since.get_or_insert_with(Instant::now);
                    return;
                }
                Err(TrySendError::Closed(_)) => {
                    self.closed = true;
                    self.stash.clear();
                }
            }
        }
        self.blocked_since = None;
        self.resume(consumer);
    }

    fn resume(&mut self, consumer: &GroupConsumer) {
        if let Some(list) = self.paused.take()
            && let Err(e) = consumer.resume(&list)
        {
            debug!(error = %e, "resume");
        }
    }

    /// A paused lane stays bounded: a partition assigned to it since the pause is paused too.
    fn keep_paused(&mut self, consumer: &GroupConsumer, topic: &str, partition: i32) {
        let Some(list) = &mut self.paused else {
            return;
        };
        if list.find_partition(topic, partition).is_none() {
            let mut one = TopicPartitionList::new();
            one.add_partition(topic, partition);
            if let Err(e) = consumer.pause(&one) {
                debug!(error = %e, "pause");
            }
            list.add_partition(topic, partition);
        }
    }

    /// Deals one message to this lane; a closed lane's task is gone, so nothing is copied.
    fn push(&mut self, consumer: &GroupConsumer, message: &BorrowedMessage<'_>) {
        if self.closed {
            return;
        }
        self.keep_paused(consumer, message.topic(), message.partition());
        self.chunk.push(message.detach());
        if self.chunk.len() >= CHUNK {
            self.seal();
        }
    }

    /// Moves the chunk being dealt to the stash.
    fn seal(&mut self) {
        if !self.chunk.is_empty() {
            let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
            self.stash.push_back(Event::Messages(chunk));
        }
    }

    /// Drops what is waiting of revoked partitions and tells the task, in order.
    fn revoke(&mut self, consumer: &GroupConsumer, seq: u64, revoked: &[(String, i32)]) {
        self.seal();
        let gone = |m: &OwnedMessage| {
            revoked
                .iter()
                .any(|(t, p)| t == m.topic() && *p == m.partition())
        };
        for event in &mut self.stash {
            if let Event::Messages(messages) = event {
                messages.retain(|m| !gone(m));
            }
        }
        self.stash
            .retain(|e| !matches!(e, Event::Messages(m) if m.is_empty()));
        self.stash.push_back(Event::Revoked {
            seq,
            partitions: revoked.to_vec(),
        });
        self.resume(consumer);
    }

    /// Whether the dispatcher must wait for this lane before taking more messages.
    fn holds_up(&self) -> bool {
        self.blocked_since.is_some() && self.paused.is_none()
    }
}

/// Polls the consumer and deals its messages to `senders[owner(partition)]` until `stop`.
pub async fn dispatch(
    consumer: &GroupConsumer,
    senders: Vec<mpsc::Sender<Event>>,
    stop: &CancellationToken,
) {
    let tasks = senders.len();
    let mut lanes: Vec<Lane> = senders
        .into_iter()
        .map(|tx| Lane {
            tx,
            chunk: Vec::with_capacity(CHUNK),
            stash: VecDeque::new(),
            blocked_since: None,
            paused: None,
            closed: false,
        })
        .collect();
    loop {
        for lane in &mut lanes {
            lane.flush(consumer);
        }
        let held_since = lanes
            .iter()
            .filter(|l| l.holds_up())
            .filter_map(|l| l.blocked_since)
            .min();
        let waiting: Vec<mpsc::Sender<Event>> = lanes
            .iter()
            .filter(|l| !l.stash.is_empty())
            .map(|l| l.tx.clone())
            .collect();
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = room(waiting), if lanes.iter().any(|l| !l.stash.is_empty()) => {}
            message = consumer.recv(), if held_since.is_none() => {
                // Take what else is ready, up to a chunk's worth, before serving the lanes.
                let mut next = Some(message);
                let mut taken = 0;
                while let Some(message) = next.take() {
                    let (seq, revoked) = consumer.context().take_revoked();
                    if !revoked.is_empty() {
                        for lane in &mut lanes {
                            lane.revoke(consumer, seq, &revoked);
                        }
                    }
                    match message {
                        Ok(message) => {
                            let lane = owner(message.partition(), tasks);
                            lanes[lane].push(consumer, &message);
                        }
                        Err(e) => warn!(error = %e, "consume error"),
                    }
                    taken += 1;
                    if taken < CHUNK {
                        next = consumer.recv().now_or_never();
                    }
                }
                for lane in &mut lanes {
                    lane.seal();
                }
            }
            _ = sleep_until(held_since.map(|t| t + BLOCKED_PAUSE)), if held_since.is_some() => {
                let now = Instant::now();
                for (i, lane) in lanes.iter_mut().enumerate() {
                    let overdue = lane.blocked_since.is_some_and(|t| t + BLOCKED_PAUSE <= now);
                    if lane.holds_up() && overdue {
                        lane.paused = Some(pause(consumer, i, tasks));
                    }
                }
            }
        }
    }
}

/// Waits until one of `senders` has room.
async fn room(senders: Vec<mpsc::Sender<Event>>) {
    let reserves = senders
        .iter()
        .map(|tx| Box::pin(tx.reserve()))
        .collect::<Vec<_>>();
    if reserves.is_empty() {
        return;
    }
    // A permit is dropped unused: the room stays for the flush that follows.
    let _ = futures::future::select_all(reserves).await;
}

/// Pauses the assigned partitions task `task` owns; returns them.
fn pause(consumer: &GroupConsumer, task: usize, tasks: usize) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    if let Ok(assignment) = consumer.assignment() {
        for e in assignment.elements() {
            if owner(e.partition(), tasks) == task {
                list.add_partition(e.topic(), e.partition());
            }
        }
    }
    if let Err(e) = consumer.pause(&list) {
        debug!(error = %e, "pause");
    }
    debug!(
        task,
        partitions = list.count(),
        "task blocked: its partitions paused"
    );
    list
}

/// Sleeps until `deadline`; for a `select!` branch enabled only when there is one.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_always_goes_to_the_same_task() {
        assert_eq!(owner(0, 6), 0);
        assert_eq!(owner(7, 6), 1);
        assert_eq!(owner(11, 6), 5);
        assert_eq!(owner(5, 1), 0);
        assert_eq!(owner(3, 0), 0, "no tasks is treated as one");
    }

    #[test]
    fn tasks_share_a_range_assignment_evenly() {
        // Two pods of 6 tasks on 12 partitions: the range assignor gives each pod 6 in a row.
        let second_pod: Vec<i32> = (6..12).collect();
        for task in 0..6 {
            assert_eq!(owned_by(&second_pod, task, 6).len(), 1);
        }
        let all: Vec<i32> = (0..12).rev().collect();
        assert_eq!(owned_by(&all, 2, 6), vec![2, 8]);
        assert_eq!(owned_by(&[], 0, 6), Vec::<i32>::new());
    }
}
