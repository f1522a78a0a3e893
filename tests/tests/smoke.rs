//! Every local service the other tests rely on answers.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use adbsink_tests::Services;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::Connection;

#[tokio::test]
async fn postgres_answers_select_1() {
    let services = Services::from_env();
    let mut conn = sqlx::PgConnection::connect(&services.pg_url)
        .await
        .expect("connect");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .expect("select");
    assert_eq!(one, 1);
}

#[tokio::test]
async fn mariadb_answers_select_1() {
    let services = Services::from_env();
    let mut conn = sqlx::MySqlConnection::connect(&services.mysql_url)
        .await
        .expect("connect");
    let one: i64 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .expect("select");
    assert_eq!(one, 1);
}

#[test]
fn broker_answers_a_metadata_request() {
    let services = Services::from_env();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &services.kafka_bootstrap)
        .create()
        .expect("client");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(20))
        .expect("metadata");
    assert_eq!(metadata.brokers().len(), 1, "a single-node broker");
}
