//! The database stops for 10 s mid-stream and comes back: nothing is lost or dead-lettered, and
//! the outage shows as RETRYING on the status topic. These tests stop a shared service, so
//! scripts/test.sh runs them alone, after everything else.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;
use std::time::Duration;

use adbsink_runtime::records::{StatusRecord, TaskState};
use adbsink_tests::harness::{
    Db, RunningSink, config, id_value_setup, manifest, produce_ids, provisioner, read_topic,
};
use adbsink_tests::{Services, eventually};

fn service(services: &Services, action: &str, name: &str) {
    let status = Command::new("bash")
        .arg(&services.dev_services)
        .args([action, name])
        .status()
        .expect("run dev-services.sh");
    assert!(status.success(), "dev-services.sh {action} {name}");
}

async fn outage(db: Db, service_name: &str) {
    let services = Services::from_env();
    let (name, topic, table) = id_value_setup(&services, db, "outage", true).await;
    produce_ids(&services, &topic, 0..1000, 3).await;
    let mut sink = manifest(&services, db, &name, &topic, &table);
    sink.spec.write.max_batch_rows = 100;
    sink.spec.write.linger_ms = 20;
    sink.spec.source.concurrency = 3;
    let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
    let running = RunningSink::start(config(&sink)).await;
    eventually("the first rows", Duration::from_secs(60), || async {
        (db.count(&services, &table).await > 0).then_some(())
    })
    .await;

    service(&services, "stop", service_name);
    produce_ids(&services, &topic, 1000..2000, 3).await;
    let retrying = eventually("a RETRYING task", Duration::from_secs(30), || async {
        let status = provisioner(&services)
            .read_latest::<StatusRecord>(&topics.status)
            .await
            .ok()?;
        status
            .into_values()
            .find(|t| t.state == TaskState::Retrying)
    })
    .await;
    assert!(retrying.last_error.is_some(), "the retry says why");
    // The outage itself: the database stays down for 10 s while messages keep arriving.
    tokio::time::sleep(Duration::from_secs(10)).await;
    service(&services, "start", service_name);

    eventually(
        "every row after the outage",
        Duration::from_secs(120),
        || async { (db.count(&services, &table).await == 2000).then_some(()) },
    )
    .await;
    eventually("tasks running again", Duration::from_secs(30), || async {
        let status = provisioner(&services)
            .read_latest::<StatusRecord>(&topics.status)
            .await
            .ok()?;
        status
            .values()
            .all(|t| t.state == TaskState::Running)
            .then_some(())
    })
    .await;
    running.stop().await;
    assert!(
        read_topic(&services, &topics.error).await.is_empty(),
        "nothing dead-lettered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_postgres_stopped_for_10s_loses_nothing() {
    outage(Db::Postgres, "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_mariadb_stopped_for_10s_loses_nothing() {
    outage(Db::MySql, "mariadb").await;
}
