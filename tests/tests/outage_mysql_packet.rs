//! MySQL's `max_allowed_packet` is a server setting, not a property of any row: statements
//! larger than it are made smaller, and only a row that is too large alone reaches the error
//! topic. This test lowers the shared server's global limit, so it runs with the outage tests,
//! alone (scripts/test.sh).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use adbsink_tests::harness::{
    Db, RunningSink, committed, config, manifest, read_topic, table_and_topic,
};
use adbsink_tests::{Kafka, Services, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_mysql_statements_shrink_to_max_allowed_packet() {
    let services = Services::from_env();
    let db = Db::MySql;
    let (name, topic, table) =
        table_and_topic(&services, db, "packet", "(id BIGINT, v LONGTEXT)", 1).await;
    let kafka = Kafka::new(&services.kafka_bootstrap);
    let filler = "x".repeat(100 << 10);
    let huge = "y".repeat(1536 << 10);
    let mut messages: Vec<String> = (0..40)
        .map(|id| format!(r#"{{"id": {id}, "v": "{filler}"}}"#))
        .collect();
    messages.insert(20, format!(r#"{{"id": 1000, "v": "{huge}"}}"#));
    kafka
        .produce_to(
            &topic,
            messages.iter().map(|m| (Some(0), None, m.as_bytes())),
        )
        .await
        .unwrap();

    let original = db
        .rows(
            &services,
            "SELECT CAST(@@GLOBAL.max_allowed_packet AS CHAR)",
        )
        .await;
    let original = original[0][0].clone().unwrap();
    db.execute(&services, "SET GLOBAL max_allowed_packet = 1048576")
        .await;
    let mut sink = manifest(&services, db, &name, &topic, &table);
    sink.spec.write.linger_ms = 200;
    let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
    let running = RunningSink::start(config(&sink)).await;
    let group = running.group();
    let done = tokio::time::timeout(
        Duration::from_secs(120),
        // The timeout ends the wait first, so the limit is restored whatever happens.
        eventually("everything committed", Duration::from_secs(600), || async {
            (committed(&services, &group, &topic).await.get(&0) == Some(&Some(41))).then_some(())
        }),
    )
    .await;
    running.stop().await;
    db.execute(
        &services,
        &format!("SET GLOBAL max_allowed_packet = {original}"),
    )
    .await;
    done.expect("committed in time");
    assert_eq!(
        db.count(&services, &table).await,
        40,
        "every row that fits alone"
    );
    let failed = read_topic(&services, &topics.error).await;
    assert_eq!(failed.len(), 1, "only the row too large alone");
    assert_eq!(failed[0].headers["__connect.errors.offset"], "20");
    let reason = &failed[0].headers["__connect.errors.exception.message"];
    assert!(reason.contains("max_allowed_packet"), "{reason}");
}
