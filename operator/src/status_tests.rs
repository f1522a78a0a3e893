use super::*;
use crate::build::testing::sink;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

fn at(second: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(second).expect("ts")
}

fn condition<'a>(status: &'a AnalyticDBSinkStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", status.conditions))
}

fn record(task: &str, state: TaskState, error: Option<&str>, time: &str) -> StatusRecord {
    StatusRecord {
        version: 1,
        sink: "orders".into(),
        task_id: task.into(),
        state,
        partitions: vec![0],
        records_written: 10,
        records_failed: 1,
        records_skipped: 2,
        last_error: error.map(str::to_string),
        timestamp: time.into(),
    }
}

/// Everything went through, with `ready` of 2 pods ready.
fn healthy(ready: i32) -> Findings {
    Findings {
        credentials: Some(Check::ok(reason::CREDENTIALS_RESOLVED, "ok")),
        topics: Some(Check::ok(reason::TOPICS_CREATED, "created a")),
        group: Some(Check::ok(reason::GROUP_CREATED, "created g")),
        deployment: Some(Replicas { desired: 2, ready }),
        tasks: Some(vec![record(
            "orders-sink-a-0",
            TaskState::Running,
            None,
            "2026-01-01T00:00:00Z",
        )]),
        lag: Some(7),
        created_topics: vec!["connect-offset-orders".into()],
        ..Findings::default()
    }
}

#[test]
fn a_fully_provisioned_available_sink_is_ready_and_running() {
    let s = sink("orders");
    let status = compute(&s, &healthy(2), at(100));
    assert_eq!(status.phase, Some(Phase::Running));
    assert_eq!(status.observed_generation, Some(3));
    for type_ in [
        conditions::READY,
        conditions::TOPICS_READY,
        conditions::CONSUMER_GROUP_READY,
        conditions::CREDENTIALS_READY,
        conditions::SINK_AVAILABLE,
    ] {
        assert_eq!(condition(&status, type_).status, "True", "{type_}");
        assert_eq!(condition(&status, type_).observed_generation, Some(3));
    }
    assert_eq!(condition(&status, conditions::DEGRADED).status, "False");
    assert_eq!(condition(&status, conditions::READY).reason, "Ready");
    assert_eq!((status.replicas, status.ready_replicas), (2, 2));
    assert_eq!(status.lag, Some(7));
    assert_eq!(status.consumer_group.as_deref(), Some("connect-orders"));
    assert_eq!(
        status.topics.as_ref().map(|t| t.status.as_str()),
        Some("connect-status-orders")
    );
    assert_eq!(
        status.created_topics,
        vec!["connect-offset-orders".to_string()]
    );
    assert_eq!((status.records_written, status.records_failed), (10, 1));
    assert_eq!(status.tasks[0].id, "orders-sink-a-0");
    assert_eq!(status.tasks[0].state, "RUNNING");
}

#[test]
fn pods_not_yet_ready_mean_provisioning() {
    let status = compute(&sink("orders"), &healthy(1), at(100));
    assert_eq!(status.phase, Some(Phase::Provisioning));
    let ready = condition(&status, conditions::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Progressing")
    );
    assert_eq!(ready.message, "1/2 sink pods ready");
}

#[test]
fn a_failed_task_degrades_the_sink_and_sets_last_error() {
    let mut findings = healthy(2);
    findings.tasks = Some(vec![
        record(
            "orders-sink-a-0",
            TaskState::Running,
            Some("old hiccup"),
            "2026-01-01T00:00:00Z",
        ),
        record(
            "orders-sink-a-1",
            TaskState::Failed,
            Some("column x does not exist"),
            "2026-01-01T00:00:05Z",
        ),
    ]);
    let status = compute(&sink("orders"), &findings, at(100));
    let degraded = condition(&status, conditions::DEGRADED);
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "TaskFailed")
    );
    let ready = condition(&status, conditions::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "TaskFailed")
    );
    assert_eq!(
        status.last_error.as_deref(),
        Some("task orders-sink-a-1 failed: column x does not exist")
    );
    assert_eq!(status.phase, Some(Phase::Failed));
    assert_eq!((status.records_written, status.records_failed), (20, 2));
    assert_eq!(
        status.records_skipped, 4,
        "skipped records add up over tasks"
    );
}

#[test]
fn invalid_spec_names_the_fields_and_claims_nothing() {
    let findings = Findings {
        invalid: Some("spec.source.concurrency: must be one of [1, 2, 3, 6, 12], got 5".into()),
        ..Findings::default()
    };
    let status = compute(&sink("orders"), &findings, at(100));
    let ready = condition(&status, conditions::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(ready.message.contains("spec.source.concurrency"));
    assert_eq!(
        condition(&status, conditions::TOPICS_READY).status,
        "Unknown"
    );
    assert_eq!(status.phase, Some(Phase::Failed));
    assert_eq!(status.consumer_group, None);
    assert_eq!(status.topics, None);
}

#[test]
fn conflict_missing_secret_and_kafka_outage_each_block_ready_with_their_reason() {
    let s = sink("orders");
    let conflict = Findings {
        conflict: Some("other/older".into()),
        ..Findings::default()
    };
    let status = compute(&s, &conflict, at(1));
    assert_eq!(
        condition(&status, conditions::READY).reason,
        "ResourceConflict"
    );
    assert!(
        condition(&status, conditions::READY)
            .message
            .contains("other/older")
    );
    assert_eq!(status.phase, Some(Phase::Failed));
    assert_eq!(status.consumer_group, None);

    let secret = Findings {
        credentials: Some(Check::fail(
            reason::SECRET_NOT_FOUND,
            "Secret \"db\" not found",
        )),
        ..Findings::default()
    };
    let status = compute(&s, &secret, at(1));
    assert_eq!(
        condition(&status, conditions::READY).reason,
        "SecretNotFound"
    );
    assert_eq!(
        condition(&status, conditions::CREDENTIALS_READY).status,
        "False"
    );
    assert_eq!(status.phase, Some(Phase::Pending));

    let outage = Findings {
        credentials: Some(Check::ok(reason::CREDENTIALS_RESOLVED, "ok")),
        kafka_error: Some("broker down".into()),
        ..Findings::default()
    };
    let status = compute(&s, &outage, at(1));
    assert_eq!(
        condition(&status, conditions::READY).reason,
        "KafkaUnavailable"
    );
    assert_eq!(
        condition(&status, conditions::TOPICS_READY).status,
        "Unknown"
    );
    assert_eq!(
        condition(&status, conditions::TOPICS_READY).reason,
        "KafkaUnavailable"
    );
    assert_eq!(status.last_error.as_deref(), Some("broker down"));
    assert_eq!(status.phase, Some(Phase::Pending));
}

#[test]
fn manual_topic_problems_name_the_topic_and_misconfiguration_fails() {
    let s = sink("orders");
    let mut findings = Findings {
        credentials: Some(Check::ok(reason::CREDENTIALS_RESOLVED, "ok")),
        topics: Some(Check::fail(
            reason::TOPICS_MISSING,
            "connect-offset-orders: does not exist",
        )),
        ..Findings::default()
    };
    let status = compute(&s, &findings, at(1));
    let topics = condition(&status, conditions::TOPICS_READY);
    assert_eq!(
        (topics.status.as_str(), topics.reason.as_str()),
        ("False", "TopicsMissing")
    );
    assert!(
        condition(&status, conditions::READY)
            .message
            .contains("connect-offset-orders")
    );
    assert_eq!(status.phase, Some(Phase::Pending));
    findings.topics = Some(Check::fail(reason::TOPICS_MISCONFIGURED, "x: wrong"));
    assert_eq!(compute(&s, &findings, at(1)).phase, Some(Phase::Failed));
}

#[test]
fn paused_sink_is_ready_but_not_available() {
    let mut s = sink("orders");
    s.spec.paused = true;
    let mut findings = healthy(0);
    findings.deployment = Some(Replicas {
        desired: 0,
        ready: 0,
    });
    let status = compute(&s, &findings, at(1));
    assert_eq!(status.phase, Some(Phase::Paused));
    assert_eq!(condition(&status, conditions::READY).reason, "Paused");
    assert_eq!(condition(&status, conditions::READY).status, "True");
    assert_eq!(
        condition(&status, conditions::SINK_AVAILABLE).reason,
        "Paused"
    );
    assert_eq!(
        condition(&status, conditions::SINK_AVAILABLE).status,
        "False"
    );
}

#[test]
fn previous_values_survive_a_partial_reconcile_and_created_topics_accumulate() {
    let mut s = sink("orders");
    let first = compute(&s, &healthy(2), at(100));
    s.status = Some(first.clone());
    let mut partial = Findings {
        credentials: Some(Check::ok(reason::CREDENTIALS_RESOLVED, "ok")),
        kafka_error: Some("broker down".into()),
        ..Findings::default()
    };
    partial.created_topics = vec!["connect-config-orders".into()];
    let second = compute(&s, &partial, at(200));
    assert_eq!(second.lag, Some(7));
    assert_eq!(second.tasks, first.tasks);
    assert_eq!(second.replicas, 2);
    assert_eq!(
        second.created_topics,
        vec![
            "connect-config-orders".to_string(),
            "connect-offset-orders".to_string()
        ]
    );
    // Credentials stayed True: its transition time is the first one.
    assert_eq!(
        condition(&second, conditions::CREDENTIALS_READY).last_transition_time,
        Time(at(100))
    );
    assert_eq!(
        condition(&second, conditions::READY).last_transition_time,
        Time(at(200))
    );
}

#[test]
fn deleting_turns_ready_false_and_keeps_the_rest() {
    let mut s = sink("orders");
    s.status = Some(compute(&s, &healthy(2), at(100)));
    let status = deleting(&s, at(300));
    assert_eq!(status.phase, Some(Phase::Deleting));
    let ready = condition(&status, conditions::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Deleting")
    );
    assert_eq!(ready.last_transition_time, Time(at(300)));
    assert_eq!(condition(&status, conditions::TOPICS_READY).status, "True");
    assert_eq!(
        status.created_topics,
        vec!["connect-offset-orders".to_string()]
    );
}

#[test]
fn last_error_clears_once_the_sink_has_recovered() {
    let mut s = sink("orders");
    let outage = Findings {
        credentials: Some(Check::ok(reason::CREDENTIALS_RESOLVED, "ok")),
        kafka_error: Some("broker down".into()),
        ..Findings::default()
    };
    s.status = Some(compute(&s, &outage, at(100)));
    assert_eq!(
        s.status.as_ref().and_then(|st| st.last_error.as_deref()),
        Some("broker down")
    );
    // Everything observed again; the task recovered but still reports what it retried on.
    let mut recovered = healthy(2);
    recovered.tasks = Some(vec![record(
        "orders-sink-a-0",
        TaskState::Running,
        Some("database down"),
        "2026-01-01T00:00:00Z",
    )]);
    let status = compute(&s, &recovered, at(200));
    assert_eq!(status.last_error, None);
    // A task retrying now is what is wrong now.
    recovered.tasks = Some(vec![record(
        "orders-sink-a-0",
        TaskState::Retrying,
        Some("database down"),
        "2026-01-01T00:00:00Z",
    )]);
    let status = compute(&s, &recovered, at(300));
    assert_eq!(
        status.last_error.as_deref(),
        Some("task orders-sink-a-0: database down")
    );
}
