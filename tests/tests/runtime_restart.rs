//! Restarting a sink mid-stream loses nothing; Upsert leaves no duplicates; Insert replays
//! nothing a graceful stop committed. Earliest and Latest on a topic that already has messages.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use adbsink_crd::{InitialOffset, WriteMode};
use adbsink_tests::harness::{
    Db, RunningSink, committed, config, id_value_setup, manifest, produce_ids,
};
use adbsink_tests::{Kafka, Services, eventually, unique};

async fn restart_mid_stream(db: Db, mode: WriteMode) {
    // Enough small transactions that the stop lands mid-stream however fast the sink is.
    const N: i64 = 30_000;
    let services = Services::from_env();
    // Insert mode gets no key, so a replayed record would show up as a duplicate row.
    let (name, topic, table) =
        id_value_setup(&services, db, "restart", mode == WriteMode::Upsert).await;
    produce_ids(&services, &topic, 0..N, 3).await;

    let mut sink = manifest(&services, db, &name, &topic, &table);
    sink.spec.write.write_mode = mode;
    if mode == WriteMode::Upsert {
        sink.spec.write.primary_key = vec!["id".into()];
    }
    sink.spec.write.max_batch_rows = 10;
    sink.spec.write.linger_ms = 20;
    sink.spec.source.concurrency = 3;
    let running = RunningSink::start(config(&sink)).await;
    let group = running.group();
    eventually("some rows written", Duration::from_secs(60), || async {
        (db.count(&services, &table).await > 0).then_some(())
    })
    .await;
    let config = running.stop().await;
    let at_stop = db.count(&services, &table).await;
    let committed_at_stop: i64 = committed(&services, &group, &topic)
        .await
        .values()
        .map(|o| o.unwrap_or(0))
        .sum();
    assert!(at_stop < N, "stopped mid-stream ({at_stop} of {N} rows)");
    // A graceful stop commits exactly what it wrote: nothing is left to replay.
    assert_eq!(
        at_stop, committed_at_stop,
        "rows written = offsets committed at stop"
    );

    produce_ids(&services, &topic, N..N + 500, 3).await;
    let running = RunningSink::start(config).await;
    eventually(
        "every row after the restart",
        Duration::from_secs(90),
        || async { (db.count(&services, &table).await >= N + 500).then_some(()) },
    )
    .await;
    running.stop().await;
    let distinct = db
        .rows(&services, &format!("SELECT CAST(COUNT(DISTINCT id) AS CHAR(20)), CAST(COUNT(*) AS CHAR(20)) FROM {table}"))
        .await;
    let parse = |v: &Option<String>| v.as_deref().unwrap().trim().parse::<i64>().unwrap();
    assert_eq!(parse(&distinct[0][0]), N + 500, "no record lost");
    assert_eq!(parse(&distinct[0][1]), N + 500, "no record written twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_in_upsert_mode_loses_nothing_and_duplicates_nothing() {
    restart_mid_stream(Db::Postgres, WriteMode::Upsert).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restart_in_upsert_mode_loses_nothing_and_duplicates_nothing() {
    restart_mid_stream(Db::MySql, WriteMode::Upsert).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_in_insert_mode_replays_nothing_committed() {
    restart_mid_stream(Db::Postgres, WriteMode::Insert).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restart_in_insert_mode_replays_nothing_committed() {
    restart_mid_stream(Db::MySql, WriteMode::Insert).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earliest_reads_existing_messages_and_latest_only_new_ones() {
    let services = Services::from_env();
    let name = unique("offsets");
    let topic = format!("{name}-in");
    Kafka::new(&services.kafka_bootstrap)
        .create_topic(&topic, 3)
        .await
        .unwrap();
    produce_ids(&services, &topic, 0..100, 3).await;

    let mut running = Vec::new();
    for (initial, suffix) in [(InitialOffset::Earliest, "e"), (InitialOffset::Latest, "l")] {
        let sink_name = format!("{name}-{suffix}");
        let table = sink_name.replace('-', "_");
        Db::Postgres
            .execute(
                &services,
                &format!("CREATE TABLE {table} (id bigint PRIMARY KEY, v text)"),
            )
            .await;
        let mut sink = manifest(&services, Db::Postgres, &sink_name, &topic, &table);
        sink.spec.source.initial_offset = initial;
        sink.spec.write.linger_ms = 50;
        // Provisioning fixes the group's starting point; what is produced after it is "new".
        running.push((RunningSink::start(config(&sink)).await, table));
    }
    produce_ids(&services, &topic, 100..150, 3).await;
    let (earliest, latest) = (&running[0].1, &running[1].1);
    eventually("earliest has all 150", Duration::from_secs(60), || async {
        (Db::Postgres.count(&services, earliest).await == 150).then_some(())
    })
    .await;
    eventually(
        "latest has the 50 new ones",
        Duration::from_secs(60),
        || async { (Db::Postgres.count(&services, latest).await == 50).then_some(()) },
    )
    .await;
    let ids = Db::Postgres
        .rows(
            &services,
            &format!("SELECT min(id)::text, max(id)::text FROM {latest}"),
        )
        .await;
    assert_eq!(ids[0], vec![Some("100".into()), Some("149".into())]);
    for (sink, _) in running {
        sink.stop().await;
    }
}
