//! A rebalance never lets a member write what it read of a partition it has given up: its new
//! owner may have written newer rows since, which the late write would overwrite.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use adbsink_crd::WriteMode;
use adbsink_runtime::records::{StatusRecord, TaskState};
use adbsink_tests::harness::{
    Db, RunningSink, committed, config, manifest, provisioner, table_and_topic,
};
use adbsink_tests::{Kafka, Services, eventually};

/// Member A cannot write (its database user lacks the grant) and retries a batch holding both
/// partitions. Member B joins, the group gives B one partition, B writes it, then newer values.
/// When A's grant comes back, A must write only its own partition: before the fix, its old
/// batch overwrote B's newer row with the stale value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_never_writes_a_revoked_partition_late() {
    let services = Services::from_env();
    let db = Db::Postgres;
    let (name, topic, table) = table_and_topic(
        &services,
        db,
        "rebalance",
        "(id bigint PRIMARY KEY, v text)",
        2,
    )
    .await;
    let (user_a, user_b) = (format!("{table}_a"), format!("{table}_b"));
    db.execute(
        &services,
        &format!(
            "CREATE ROLE {user_a} LOGIN PASSWORD 'adbsink'; \
             CREATE ROLE {user_b} LOGIN PASSWORD 'adbsink'; \
             GRANT SELECT ON {table} TO {user_a}; \
             GRANT SELECT, INSERT, UPDATE ON {table} TO {user_b}"
        ),
    )
    .await;
    let produce = |value: &'static str| {
        let (kafka, topic) = (Kafka::new(&services.kafka_bootstrap), topic.clone());
        async move {
            let messages: Vec<String> = (0..2)
                .map(|id| format!(r#"{{"id": {id}, "v": "{value}"}}"#))
                .collect();
            kafka
                .produce_to(
                    &topic,
                    messages
                        .iter()
                        .enumerate()
                        .map(|(p, m)| (Some(p as i32), None, m.as_bytes())),
                )
                .await
                .unwrap();
        }
    };
    produce("v1").await;

    let mut sink = manifest(&services, db, &name, &topic, &table);
    sink.spec.write.write_mode = WriteMode::Upsert;
    sink.spec.write.primary_key = vec!["id".into()];
    sink.spec.write.linger_ms = 50;
    let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
    let member = |user: &str, prefix: &str| {
        let mut sink = sink.clone();
        sink.spec.destination.username = user.to_string();
        let mut config = config(&sink);
        config.threads = 1;
        config.task_prefix = prefix.to_string();
        config
    };
    let a = RunningSink::start(member(&user_a, "member-a")).await;
    let status = |task: &'static str, state: TaskState| {
        let (services, topic) = (services.clone(), topics.status.clone());
        async move {
            eventually(
                &format!("{task} {state:?}"),
                Duration::from_secs(60),
                || async {
                    let status = provisioner(&services)
                        .read_latest::<StatusRecord>(&topic)
                        .await
                        .ok()?;
                    status
                        .into_values()
                        .find(|t| t.task_id == task && t.state == state)
                },
            )
            .await
        }
    };
    let retrying = status("member-a-0", TaskState::Retrying).await;
    assert!(
        retrying
            .last_error
            .unwrap_or_default()
            .contains("permission denied"),
    );

    let b = RunningSink::start_without_provisioning(member(&user_b, "member-b"));
    let value_of = |id: i64| {
        let (services, table) = (services.clone(), table.clone());
        async move {
            db.rows(&services, &format!("SELECT v FROM {table} WHERE id = {id}"))
                .await
                .first()
                .and_then(|r| r[0].clone())
        }
    };
    // B's partition is the one whose row B writes.
    let b_id = eventually(
        "B writes its partition",
        Duration::from_secs(90),
        || async {
            for id in 0..2 {
                if value_of(id).await.is_some() {
                    return Some(id);
                }
            }
            None
        },
    )
    .await;
    let a_id = 1 - b_id;
    produce("v2").await;
    eventually(
        "B writes the newer value",
        Duration::from_secs(60),
        || async { (value_of(b_id).await.as_deref() == Some("v2")).then_some(()) },
    )
    .await;

    db.execute(
        &services,
        &format!("GRANT INSERT, UPDATE ON {table} TO {user_a}"),
    )
    .await;
    let group = a.group();
    eventually(
        "both partitions committed",
        Duration::from_secs(90),
        || async {
            let committed = committed(&services, &group, &topic).await;
            (committed.values().all(|c| *c == Some(2))).then_some(())
        },
    )
    .await;
    assert_eq!(value_of(a_id).await.as_deref(), Some("v2"));
    a.stop().await;
    b.stop().await;
    assert_eq!(
        value_of(b_id).await.as_deref(),
        Some("v2"),
        "A wrote the revoked partition's stale value over B's newer one"
    );
}
