//! Faults that only a mock broker can inject (rdkafka's MockCluster, no admin API): the sink
//! runs without provisioning against it, writing to the real PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use adbsink_crd::FailurePolicy;
use adbsink_runtime::KafkaConnection;
use adbsink_runtime::provision::Provisioner;
use adbsink_tests::harness::{Db, RunningSink, config, manifest};
use adbsink_tests::{Kafka, Services, eventually, unique};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

/// Under Stop the task halts at the first bad record and commits up to it once: that commit
/// must land. The broker refuses the first three commits; the sink retries until the fourth
/// lands, instead of logging "the next commit covers it" (there is no next commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stop_policy_commit_is_retried_until_it_lands() {
    let services = Services::from_env();
    let cluster = MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let name = unique("mock-stop");
    let (topic, table) = (format!("{name}-in"), name.replace('-', "_"));
    Db::Postgres
        .execute(
            &services,
            &format!("CREATE TABLE {table} (id bigint, v text)"),
        )
        .await;
    let mut sink = manifest(&services, Db::Postgres, &name, &topic, &table);
    sink.spec.source.bootstrap_servers = bootstrap.clone();
    sink.spec.runtime.failure_policy = FailurePolicy::Stop;
    sink.spec.write.linger_ms = 50;
    cluster.create_topic(&topic, 1, 1).unwrap();
    let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
    for internal in [
        &topics.offset,
        &topics.config,
        &topics.status,
        &topics.error,
    ] {
        cluster.create_topic(internal, 1, 1).unwrap();
    }
    let values = [
        r#"{"id": 1, "v": "a"}"#,
        r#"{"id": 2, "v": "b"}"#,
        "not json",
        r#"{"id": 3, "v": "c"}"#,
    ];
    Kafka::new(&bootstrap)
        .produce_to(&topic, values.iter().map(|v| (Some(0), None, v.as_bytes())))
        .await
        .unwrap();
    // Not retriable inside librdkafka: each refusal reaches the sink's commit call.
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE; 3],
    );
    let running = RunningSink::start_without_provisioning(config(&sink));
    let group = running.group();
    let provisioner = Provisioner::new(&KafkaConnection {
        bootstrap_servers: bootstrap.clone(),
        ..KafkaConnection::default()
    })
    .unwrap();
    eventually(
        "the commit at the bad record",
        Duration::from_secs(60),
        || async {
            let committed = provisioner.committed(&group, &topic).await.ok()?;
            (committed.get(&0) == Some(&Some(2))).then_some(())
        },
    )
    .await;
    running.stop().await;
    assert_eq!(Db::Postgres.count(&services, &table).await, 2);
}
