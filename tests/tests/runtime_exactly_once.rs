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
