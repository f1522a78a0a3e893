//! `write.exactlyOnce` on PostgreSQL: the table's own offsets decide what is written, so even
//! when the group's Kafka commits are lost (here: a new group reading from offset 0) every
//! record lands exactly once.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use adbsink_tests::harness::{
    Db, RunningSink, config, group_of, id_value_setup, manifest, produce_ids,
};
use adbsink_tests::{Services, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_writes_each_record_once_even_when_kafka_commits_are_lost() {
    const N: i64 = 2000;
    let services = Services::from_env();
    // No key and Insert mode: any record written twice would be a second row.
    let (name, topic, table) = id_value_setup(&services, Db::Postgres, "once", false).await;
    produce_ids(&services, &topic, 0..N, 3).await;
    let mut sink = manifest(&services, Db::Postgres, &name, &topic, &table);
    sink.spec.write.exactly_once = true;
    sink.spec.write.max_batch_rows = 100;
    sink.spec.write.linger_ms = 20;
    sink.spec.source.concurrency = 3;
    let running = RunningSink::start(config(&sink)).await;
    eventually("some rows written", Duration::from_secs(60), || async {
        (Db::Postgres.count(&services, &table).await > 0).then_some(())
    })
    .await;
    let config = running.stop().await;
    let at_stop = Db::Postgres.count(&services, &table).await;

    // A fresh group starts from offset 0: as if every Kafka commit of the first run was lost.
    let mut config = config;
    config.spec.runtime.consumer_group = Some(format!("{}-again", group_of(&config)));
    produce_ids(&services, &topic, N..N + 300, 3).await;
    let running = RunningSink::start(config).await;
    eventually("every record", Duration::from_secs(90), || async {
        (Db::Postgres.count(&services, &table).await >= N + 300).then_some(())
    })
    .await;
    running.stop().await;
    let counts = Db::Postgres
        .rows(
            &services,
            &format!("SELECT count(DISTINCT id)::text, count(*)::text FROM {table}"),
        )
        .await;
    assert_eq!(
        counts[0],
        vec![Some((N + 300).to_string()), Some((N + 300).to_string())],
        "stopped at {at_stop}"
    );
    let stored = Db::Postgres
        .rows(
            &services,
            &format!("SELECT sum(next_offset)::text FROM adbsink_offsets WHERE sink = '{name}'"),
        )
        .await;
    assert_eq!(
        stored[0][0],
        Some((N + 300).to_string()),
        "the table's offsets cover every record"
    );
}

/// Two sessions for a partition the offsets table has no row for yet (two members starting
/// at once): the second waits for the first and sees what it stored, instead of both writing
/// the same records. Before the row was seeded, `FOR UPDATE` locked nothing here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_for_a_new_partition_take_turns() {
    use std::collections::BTreeMap;

    use adbsink_runtime::Secret;
    use adbsink_runtime::database::{Database, DatabaseSettings};

    let services = Services::from_env();
    let name = adbsink_tests::unique("once-seed");
    let schema = name.replace('-', "_");
    Db::Postgres
        .execute(&services, &format!("CREATE SCHEMA {schema}"))
        .await;
    let mut sink = manifest(&services, Db::Postgres, &name, "t", "t");
    sink.spec.destination.schema = Some(schema.clone());
    let database = Database::connect(
        &DatabaseSettings {
            destination: sink.spec.destination.clone(),
            username: "adbsink".into(),
            password: Secret::new("adbsink"),
            ca_file: None,
        },
        2,
    );
    database.ensure_offsets_table().await.unwrap();
    let (first, stored) = database.begin_session(&name, "t", &[0]).await.unwrap();
    assert!(stored.get(&0).is_none_or(|next| *next == 0), "{stored:?}");
    let second = {
        let (database, name) = (database.clone(), name.clone());
        tokio::spawn(async move { database.begin_session(&name, "t", &[0]).await.map(|s| s.1) })
    };
    eventually(
        "the second session waiting on the first's lock",
        Duration::from_secs(30),
        || async {
            let waiting = Db::Postgres
                .rows(
                    &services,
                    &format!(
                        "SELECT pid::text FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                         AND query LIKE '%\"{schema}\"%'"
                    ),
                )
                .await;
            (!waiting.is_empty()).then_some(())
        },
    )
    .await;
    assert!(!second.is_finished());
    first
        .commit(&BTreeMap::from([(("t".to_string(), 0), 10)]))
        .await
        .unwrap();
    let stored = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("the second session proceeds once the first commits")
        .unwrap()
        .unwrap();
    assert_eq!(stored.get(&0), Some(&10));
}
