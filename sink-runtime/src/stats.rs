//! Live state of the consumer tasks of this process, and its publication on the status topic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::records::{RECORD_VERSION, StatusRecord, TaskState, now_rfc3339};

#[derive(Debug)]
pub struct TaskStats {
    pub id: String,
    state: Mutex<(TaskState, Option<String>)>,
    partitions: Mutex<Vec<i32>>,
    pub written: AtomicU64,
    pub failed: AtomicU64,
    pub skipped: AtomicU64,
    changed: Arc<Notify>,
}

impl TaskStats {
    pub fn new(id: String, changed: Arc<Notify>) -> Self {
        Self {
            id,
            state: Mutex::new((TaskState::Running, None)),
            partitions: Mutex::default(),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            changed,
        }
    }

    /// Sets the state; the last error stays until a newer one replaces it.
    pub fn set_state(&self, state: TaskState, error: Option<String>) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let changed = guard.0 != state || (error.is_some() && error != guard.1);
        guard.0 = state;
        if error.is_some() {
            guard.1 = error;
        }
        drop(guard);
        if changed {
            self.changed.notify_one();
        }
    }

    pub fn state(&self) -> TaskState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    pub fn set_partitions(&self, mut partitions: Vec<i32>) {
        partitions.sort_unstable();
        *self.partitions.lock().unwrap_or_else(|p| p.into_inner()) = partitions;
        self.changed.notify_one();
    }

    pub fn record(&self, sink: &str) -> StatusRecord {
        let (state, last_error) = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        StatusRecord {
            version: RECORD_VERSION,
            sink: sink.to_string(),
            task_id: self.id.clone(),
            state,
            partitions: self
                .partitions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            records_written: self.written.load(Ordering::Relaxed),
            records_failed: self.failed.load(Ordering::Relaxed),
            records_skipped: self.skipped.load(Ordering::Relaxed),
            last_error,
            timestamp: now_rfc3339(),
        }
    }
}

/// Publishes every task's record on each change and every `period`, until cancelled; then
/// once more so the final state (e.g. FAILED) is on the topic.
pub async fn publish_status(
    producer: FutureProducer,
    topic: String,
    sink: String,
    tasks: Vec<Arc<TaskStats>>,
    changed: Arc<Notify>,
    period: Duration,
    stop: CancellationToken,
) {
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = changed.notified() => false,
            _ = tokio::time::sleep(period) => false,
        };
        for task in &tasks {
            let record = task.record(&sink);
            let Ok(payload) = serde_json::to_vec(&record) else {
                continue;
            };
            let key = record.key();
            let sent = producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&payload),
                    Duration::from_secs(10),
                )
                .await;
            if let Err((e, _)) = sent {
                tracing::warn!(error = %e, topic, "cannot publish task status");
            }
        }
        if stopping {
            return;
        }
    }
}
