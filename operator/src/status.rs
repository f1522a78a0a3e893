//! From what one reconcile found to the status written on the CR: conditions, phase, tasks,
//! counters. Pure, so every rule is unit-tested without a cluster.

use adbsink_crd::{AnalyticDBSink, AnalyticDBSinkStatus, Phase, TaskStatus, resolved_topics};
use adbsink_runtime::records::{StatusRecord, TaskState};
use kube::ResourceExt;

use crate::conditions::{self, Check, reason};

/// What one reconcile found, step by step. A step that did not run leaves its field `None`.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Validation message naming the fields.
    pub invalid: Option<String>,
    /// The older sink that owns the consumer group.
    pub conflict: Option<String>,
    pub credentials: Option<Check>,
    pub topics: Option<Check>,
    pub group: Option<Check>,
    /// The brokers could not be reached (or answered with an error).
    pub kafka_error: Option<String>,
    pub deployment: Option<Replicas>,
    /// Task records of this sink's live pods, when the status topic was read.
    pub tasks: Option<Vec<StatusRecord>>,
    pub lag: Option<i64>,
    /// Topics created by this reconcile.
    pub created_topics: Vec<String>,
    /// The restart annotation value acted on.
    pub restart: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas {
    pub desired: i32,
    pub ready: i32,
}

impl Findings {
    fn failed_task(&self) -> Option<&StatusRecord> {
        self.tasks
            .iter()
            .flatten()
            .filter(|t| t.state == TaskState::Failed)
            .max_by(|a, b| a.timestamp.cmp(&b.timestamp))
    }

    fn topics_misconfigured(&self) -> bool {
        self.topics
            .as_ref()
            .is_some_and(|t| t.reason == reason::TOPICS_MISCONFIGURED)
    }
}

/// The status for `sink` given this reconcile's findings.
pub fn compute(
    sink: &AnalyticDBSink,
    findings: &Findings,
    now: jiff::Timestamp,
) -> AnalyticDBSinkStatus {
    let previous = sink.status.clone().unwrap_or_default();
    let checks = checks(sink, findings);
    let mut created_topics = previous.created_topics.clone();
    created_topics.extend(findings.created_topics.iter().cloned());
    created_topics.sort();
    created_topics.dedup();
    let tasks: Option<Vec<TaskStatus>> = findings
        .tasks
        .as_ref()
        .map(|records| records.iter().map(task_status).collect());
    let owns_group = findings.invalid.is_none() && findings.conflict.is_none();
    AnalyticDBSinkStatus {
        observed_generation: sink.metadata.generation,
        phase: Some(phase(sink, findings)),
        conditions: conditions::merge(&previous.conditions, &checks, sink.metadata.generation, now),
        instance_id: sink.spec.destination.instance_id.clone(),
        topics: owns_group.then(|| resolved_topics(&sink.name_any(), &sink.spec.runtime)),
        consumer_group: owns_group.then(|| crate::conflict::consumer_group(sink)),
        created_topics,
        replicas: findings.deployment.map_or(previous.replicas, |r| r.desired),
        ready_replicas: findings
            .deployment
            .map_or(previous.ready_replicas, |r| r.ready),
        records_written: tasks.as_ref().map_or(previous.records_written, |t| {
            t.iter().map(|t| t.records_written).sum()
        }),
        records_failed: tasks.as_ref().map_or(previous.records_failed, |t| {
            t.iter().map(|t| t.records_failed).sum()
        }),
        records_skipped: tasks.as_ref().map_or(previous.records_skipped, |t| {
            t.iter().map(|t| t.records_skipped).sum()
        }),
        // What is wrong now: cleared once a reconcile looked at everything (the tasks) and
        // found nothing; kept when it stopped before it could tell.
        last_error: match (last_error(findings), &findings.tasks) {
            (Some(error), _) => Some(error),
            (None, Some(_)) => None,
            (None, None) => previous.last_error,
        },
        lag: findings.lag.or(previous.lag),
        last_restart: findings.restart.clone().or(previous.last_restart),
        tasks: tasks.unwrap_or(previous.tasks),
    }
}

/// Phase while the finalizer runs: Ready turns False, the rest of the status stays as it was.
pub fn deleting(sink: &AnalyticDBSink, now: jiff::Timestamp) -> AnalyticDBSinkStatus {
    let message = format!("deleting (deletionPolicy {:?})", sink.spec.deletion_policy);
    deleting_with(sink, Check::fail(reason::DELETING, message), now)
}

/// Deleting, but the cleanup the deletion policy asks for cannot be done: Ready says why.
pub fn cleanup_blocked(
    sink: &AnalyticDBSink,
    message: String,
    now: jiff::Timestamp,
) -> AnalyticDBSinkStatus {
    deleting_with(sink, Check::fail(reason::CLEANUP_BLOCKED, message), now)
}

fn deleting_with(
    sink: &AnalyticDBSink,
    ready: Check,
    now: jiff::Timestamp,
) -> AnalyticDBSinkStatus {
    let previous = sink.status.clone().unwrap_or_default();
    let ready = conditions::merge(
        &previous.conditions,
        &[(conditions::READY, ready)],
        sink.metadata.generation,
        now,
    );
    let mut kept = previous.conditions.clone();
    kept.retain(|c| c.type_ != conditions::READY);
    kept.splice(0..0, ready);
    AnalyticDBSinkStatus {
        phase: Some(Phase::Deleting),
        conditions: kept,
        ..previous
    }
}

fn checks(sink: &AnalyticDBSink, f: &Findings) -> Vec<(&'static str, Check)> {
    let not_checked = || {
        Check::unknown(
            reason::NOT_CHECKED,
            "not checked: an earlier step did not complete",
        )
    };
    let kafka = |check: &Option<Check>| match (check, &f.kafka_error) {
        (Some(c), _) => c.clone(),
        (None, Some(e)) => Check::unknown(reason::KAFKA_UNAVAILABLE, e.clone()),
        (None, None) => not_checked(),
    };
    let available = match (sink.spec.paused, f.deployment) {
        (true, _) => Check::fail(reason::PAUSED, "paused: the sink is scaled to zero"),
        (false, Some(r)) if r.desired > 0 && r.ready >= r.desired => Check::ok(
            reason::AVAILABLE,
            format!("{}/{} sink pods ready", r.ready, r.desired),
        ),
        (false, Some(r)) => Check::fail(
            reason::PROGRESSING,
            format!("{}/{} sink pods ready", r.ready, r.desired),
        ),
        (false, None) => not_checked(),
    };
    let degraded = match (f.failed_task(), &f.tasks) {
        (Some(t), _) => Check::ok(reason::TASK_FAILED, failed_message(t)),
        (None, Some(_)) => Check::fail(reason::NO_FAILED_TASKS, "no task has failed"),
        (None, None) => not_checked(),
    };
    vec![
        (conditions::READY, ready(sink, f, &available)),
        (conditions::TOPICS_READY, kafka(&f.topics)),
        (conditions::CONSUMER_GROUP_READY, kafka(&f.group)),
        (
            conditions::CREDENTIALS_READY,
            f.credentials.clone().unwrap_or_else(not_checked),
        ),
        (conditions::SINK_AVAILABLE, available),
        (conditions::DEGRADED, degraded),
    ]
}

/// Ready repeats the first thing that blocks the sink, so one condition tells what to fix.
fn ready(sink: &AnalyticDBSink, f: &Findings, available: &Check) -> Check {
    if let Some(message) = &f.invalid {
        return Check::fail(reason::INVALID_SPEC, message.clone());
    }
    if let Some(owner) = &f.conflict {
        return Check::fail(
            reason::RESOURCE_CONFLICT,
            format!(
                "consumer group {:?} is already used by the older AnalyticDBSink {owner}",
                crate::conflict::consumer_group(sink)
            ),
        );
    }
    if let Some(blocker) = [&f.credentials, &f.topics, &f.group]
        .into_iter()
        .flatten()
        .find(|c| !c.is_ok())
    {
        return Check::fail(blocker.reason, blocker.message.clone());
    }
    if let Some(e) = &f.kafka_error {
        return Check::fail(reason::KAFKA_UNAVAILABLE, e.clone());
    }
    if let Some(task) = f.failed_task() {
        return Check::fail(reason::TASK_FAILED, failed_message(task));
    }
    if sink.spec.paused && f.deployment.is_some() {
        return Check::ok(
            reason::PAUSED,
            "paused: resources are ready, the sink is scaled to zero",
        );
    }
    if available.is_ok() {
        return Check::ok(reason::READY, "the sink is running");
    }
    Check::fail(available.reason, available.message.clone())
}

fn phase(sink: &AnalyticDBSink, f: &Findings) -> Phase {
    if sink.metadata.deletion_timestamp.is_some() {
        Phase::Deleting
    } else if f.invalid.is_some()
        || f.conflict.is_some()
        || f.topics_misconfigured()
        || f.failed_task().is_some()
    {
        Phase::Failed
    } else if f.deployment.is_none() {
        // Waiting for something outside the operator: a Secret, a Manual topic, the brokers.
        Phase::Pending
    } else if sink.spec.paused {
        Phase::Paused
    } else if f
        .deployment
        .is_some_and(|r| r.desired > 0 && r.ready >= r.desired)
        && f.kafka_error.is_none()
    {
        Phase::Running
    } else {
        Phase::Provisioning
    }
}

fn failed_message(task: &StatusRecord) -> String {
    format!(
        "task {} failed: {}",
        task.task_id,
        task.last_error.as_deref().unwrap_or("no error reported")
    )
}

fn last_error(f: &Findings) -> Option<String> {
    if let Some(task) = f.failed_task() {
        return Some(failed_message(task));
    }
    if let Some(e) = &f.kafka_error {
        return Some(e.clone());
    }
    // A running task keeps reporting the last error it recovered from: only a task that is
    // retrying now says something is wrong now.
    f.tasks
        .iter()
        .flatten()
        .filter(|t| t.state == TaskState::Retrying && t.last_error.is_some())
        .max_by(|a, b| a.timestamp.cmp(&b.timestamp))
        .map(|t| {
            format!(
                "task {}: {}",
                t.task_id,
                t.last_error.as_deref().unwrap_or_default()
            )
        })
}

fn task_status(record: &StatusRecord) -> TaskStatus {
    TaskStatus {
        id: record.task_id.clone(),
        state: record.state.as_str().to_string(),
        partitions: record.partitions.clone(),
        records_written: i64::try_from(record.records_written).unwrap_or(i64::MAX),
        records_failed: i64::try_from(record.records_failed).unwrap_or(i64::MAX),
        records_skipped: i64::try_from(record.records_skipped).unwrap_or(i64::MAX),
        last_error: record.last_error.clone(),
        updated_at: Some(record.timestamp.clone()),
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
