//! A hostile corpus mixed into good messages. Continue: every good record is in the table and
//! every bad one on the right topic with Kafka Connect's error headers. Stop: consumption halts
//! before the first bad record, committed exactly at it. The table is never damaged.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use adbsink_crd::{FailurePolicy, UnknownFields, WriteMode};
use adbsink_runtime::records::{StatusRecord, TaskState};
use adbsink_tests::harness::{
    Db, Read, RunningSink, committed, config, manifest, provisioner, read_topic,
};
use adbsink_tests::{Kafka, Services, eventually, unique};

/// (payload, what must happen to it under Continue with unknownFields Fail)
fn corpus() -> Vec<(Vec<u8>, Fate)> {
    vec![
        (br#"{"id": 1, "name": "a", "qty": 1}"#.to_vec(), Fate::Row),
        (
            b"\xff\xfe{\"id\": 90}".to_vec(),
            Fate::DeadLetter("InvalidUtf8"),
        ),
        (
            br#"{"id": 91, "name": "#.to_vec(),
            Fate::DeadLetter("InvalidJson"),
        ),
        (
            br#"[{"id": 92}]"#.to_vec(),
            Fate::DeadLetter("NotAJsonObject"),
        ),
        (b"42".to_vec(), Fate::DeadLetter("NotAJsonObject")),
        (
            br#"{"id": 2, "name": "b", "qty": 2, "extra": true}"#.to_vec(),
            Fate::Unknown,
        ),
        (
            br#"{"id": 3, "name": "c", "qty": "abc"}"#.to_vec(),
            Fate::Rejected,
        ),
        (
            br#"{"id": 4, "name": null, "qty": 4}"#.to_vec(),
            Fate::Rejected,
        ),
        (
            br#"{"id": 5, "name": "this is far too long", "qty": 5}"#.to_vec(),
            Fate::Rejected,
        ),
        (
            br#"{"id": 6, "name": "d", "id\"; DROP TABLE t;--": 1}"#.to_vec(),
            Fate::Unknown,
        ),
        (br#"{"id": 7, "name": "e", "qty": 7}"#.to_vec(), Fate::Row),
        (br#"{"id": 8, "name": "f"}"#.to_vec(), Fate::Row),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Row,
    DeadLetter(&'static str),
    /// A key that is no column: an error-topic record under Fail, a row under Ignore.
    Unknown,
    Rejected,
}

struct Setup {
    services: Services,
    name: String,
    topic: String,
    table: String,
}

async fn setup(db: Db, corpus: &[(Vec<u8>, Fate)]) -> Setup {
    let services = Services::from_env();
    let name = unique("hostile");
    let (topic, table) = (format!("{name}-in"), name.replace('-', "_"));
    let ddl = match db {
        Db::Postgres => format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, name varchar(10) NOT NULL, qty int DEFAULT 0)"
        ),
        Db::MySql => format!(
            "CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(10) NOT NULL, qty INT DEFAULT 0)"
        ),
    };
    db.execute(&services, &ddl).await;
    let kafka = Kafka::new(&services.kafka_bootstrap);
    kafka.create_topic(&topic, 1).await.unwrap();
    // Keys and headers must survive the trip to the error topics.
    let keys: Vec<String> = (0..corpus.len()).map(|i| format!("key-{i}")).collect();
    kafka
        .produce_to(
            &topic,
            corpus
                .iter()
                .zip(&keys)
                .map(|((v, _), k)| (Some(0), Some(k.as_str()), v.as_slice())),
        )
        .await
        .unwrap();
    Setup {
        services,
        name,
        topic,
        table,
    }
}

async fn table_rows(db: Db, s: &Setup) -> Vec<Vec<Option<String>>> {
    let cast = match db {
        Db::Postgres => "CAST(id AS text), name, CAST(qty AS text)",
        Db::MySql => "CAST(id AS CHAR), name, CAST(qty AS CHAR)",
    };
    db.rows(
        &s.services,
        &format!("SELECT {cast} FROM {} ORDER BY {}.id", s.table, s.table),
    )
    .await
}

fn row(id: i32, name: &str, qty: i32) -> Vec<Option<String>> {
    vec![
        Some(id.to_string()),
        Some(name.to_string()),
        Some(qty.to_string()),
    ]
}

async fn continue_policy(db: Db, unknown: UnknownFields, mode: WriteMode) {
    let corpus = corpus();
    let s = setup(db, &corpus).await;
    let mut sink = manifest(&s.services, db, &s.name, &s.topic, &s.table);
    sink.spec.write.unknown_fields = unknown;
    sink.spec.write.write_mode = mode;
    if mode == WriteMode::Upsert {
        sink.spec.write.primary_key = vec!["id".into()];
    }
    sink.spec.write.linger_ms = 50;
    let topics = adbsink_crd::resolved_topics(&s.name, &sink.spec.runtime);
    let running = RunningSink::start(config(&sink)).await;
    let group = running.group();
    let expected_failures = corpus
        .iter()
        .filter(|(_, f)| {
            *f != Fate::Row && !(*f == Fate::Unknown && unknown == UnknownFields::Ignore)
        })
        .count();
    eventually(
        "every message committed",
        Duration::from_secs(60),
        || async {
            (committed(&s.services, &group, &s.topic).await.get(&0)
                == Some(&Some(corpus.len() as i64)))
            .then_some(())
        },
    )
    .await;
    running.stop().await;

    let mut expected_rows = vec![row(1, "a", 1), row(7, "e", 7), row(8, "f", 0)];
    if unknown == UnknownFields::Ignore {
        expected_rows.extend([row(2, "b", 2), row(6, "d", 0)]);
        expected_rows.sort();
    }
    assert_eq!(table_rows(db, &s).await, expected_rows);

    // Dead-letter and error share connect-error-<name> by default; the stage header tells them apart.
    assert_eq!(topics.dead_letter, topics.error);
    let failed: Vec<Read> = read_topic(&s.services, &topics.error).await;
    let source = read_topic(&s.services, &s.topic).await;
    assert_eq!(failed.len(), expected_failures, "{failed:#?}");
    for record in &failed {
        let offset: usize = record.headers["__connect.errors.offset"].parse().unwrap();
        let (payload, fate) = &corpus[offset];
        assert_eq!(
            record.value.as_deref(),
            Some(payload.as_slice()),
            "value kept"
        );
        assert_eq!(
            record.key.as_deref(),
            Some(format!("key-{offset}").as_bytes()),
            "key kept"
        );
        assert_eq!(record.timestamp, source[offset].timestamp, "timestamp kept");
        assert!(record.timestamp.is_some());
        assert_eq!(record.headers["__connect.errors.topic"], s.topic);
        assert_eq!(record.headers["__connect.errors.partition"], "0");
        assert_eq!(record.headers["__connect.errors.connector.name"], s.name);
        assert!(record.headers["__connect.errors.task.id"].starts_with("standalone-"));
        assert!(!record.headers["__connect.errors.exception.message"].is_empty());
        assert!(record.headers.contains_key("__connect.errors.class.name"));
        let (stage, class) = (
            &record.headers["__connect.errors.stage"],
            &record.headers["__connect.errors.exception.class.name"],
        );
        match fate {
            Fate::DeadLetter(expected) => {
                assert_eq!(stage, "VALUE_CONVERTER", "offset {offset}");
                assert_eq!(class, expected, "offset {offset}");
            }
            Fate::Unknown => {
                assert_eq!(
                    (stage.as_str(), class.as_str()),
                    ("TASK_PUT", "UnknownColumn"),
                    "offset {offset}"
                );
            }
            Fate::Rejected => {
                assert_eq!(
                    (stage.as_str(), class.as_str()),
                    ("TASK_PUT", "DataRejected"),
                    "offset {offset}"
                );
                assert!(
                    record.headers.contains_key("__adbsink.errors.sql.state"),
                    "offset {offset}"
                );
            }
            Fate::Row => panic!("good record {offset} was sent to the error topic"),
        }
    }
}

async fn stop_policy(db: Db, corpus: Vec<(Vec<u8>, Fate)>, first_bad: i64) {
    let s = setup(db, &corpus).await;
    let mut sink = manifest(&s.services, db, &s.name, &s.topic, &s.table);
    sink.spec.runtime.failure_policy = FailurePolicy::Stop;
    sink.spec.write.linger_ms = 50;
    let topics = adbsink_crd::resolved_topics(&s.name, &sink.spec.runtime);
    let running = RunningSink::start(config(&sink)).await;
    let group = running.group();
    let failed = eventually(
        "a FAILED task on the status topic",
        Duration::from_secs(60),
        || async {
            let status = provisioner(&s.services)
                .read_latest::<StatusRecord>(&topics.status)
                .await
                .ok()?;
            status.into_values().find(|t| t.state == TaskState::Failed)
        },
    )
    .await;
    let reason = failed.last_error.expect("the failure says why");
    assert!(
        reason.contains(&format!("{}[0]@{first_bad}", s.topic)),
        "{reason}"
    );
    // The group commits exactly up to the bad record, and stays there.
    eventually(
        "committed at the bad record",
        Duration::from_secs(30),
        || async {
            (committed(&s.services, &group, &s.topic).await.get(&0) == Some(&Some(first_bad)))
                .then_some(())
        },
    )
    .await;
    running.stop().await;
    assert_eq!(
        committed(&s.services, &group, &s.topic).await.get(&0),
        Some(&Some(first_bad))
    );
    let good_before: Vec<Vec<Option<String>>> = (0..first_bad as usize)
        .map(|i| {
            let v: serde_json::Value = serde_json::from_slice(&corpus[i].0).unwrap();
            row(
                v["id"].as_i64().unwrap() as i32,
                v["name"].as_str().unwrap(),
                v["qty"].as_i64().unwrap_or(0) as i32,
            )
        })
        .collect();
    assert_eq!(
        table_rows(db, &s).await,
        good_before,
        "only the records before the bad one"
    );
    assert!(
        read_topic(&s.services, &topics.error).await.is_empty(),
        "Stop dead-letters nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_continue_routes_each_bad_record_and_keeps_every_good_one() {
    continue_policy(Db::Postgres, UnknownFields::Fail, WriteMode::Insert).await;
}

/// Upsert on PostgreSQL copies into a stage table and merges: a row the stage or the merge
/// refuses is isolated like an INSERT's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upsert_continue_routes_each_bad_record_and_keeps_every_good_one() {
    continue_policy(Db::Postgres, UnknownFields::Fail, WriteMode::Upsert).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_continue_routes_each_bad_record_and_keeps_every_good_one() {
    continue_policy(Db::MySql, UnknownFields::Fail, WriteMode::Insert).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_ignore_drops_the_keys_and_writes_the_rows() {
    continue_policy(Db::Postgres, UnknownFields::Ignore, WriteMode::Insert).await;
    continue_policy(Db::MySql, UnknownFields::Ignore, WriteMode::Insert).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_policy_halts_before_a_malformed_record() {
    // The first bad record is the non-UTF-8 one at offset 1.
    stop_policy(Db::Postgres, corpus(), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_policy_halts_before_a_row_the_database_rejects() {
    let corpus: Vec<_> = corpus()
        .into_iter()
        .filter(|(_, f)| matches!(f, Fate::Row | Fate::Rejected))
        .collect();
    // Good id 1, then "abc" into an integer column at offset 1.
    stop_policy(Db::MySql, corpus.clone(), 1).await;
    let reordered = vec![
        corpus[0].clone(),
        corpus[4].clone(),
        corpus[5].clone(),
        corpus[1].clone(),
        corpus[2].clone(),
    ];
    stop_policy(Db::Postgres, reordered, 3).await;
}

/// A row too large for InnoDB's page (MySQL 1118, "Row size too large", which a COMPACT table
/// made without strict mode refuses at insert time, value by value) is the row's fault: it goes
/// to the error topic and the rows beside it are written, instead of the batch being retried
/// for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_row_too_large_for_the_page_is_rejected_alone() {
    let services = Services::from_env();
    let name = unique("rowsize");
    let (topic, table) = (format!("{name}-in"), name.replace('-', "_"));
    let columns: Vec<String> = (1..=12).map(|i| format!("c{i}")).collect();
    let ddl = format!(
        "SET STATEMENT innodb_strict_mode=OFF FOR CREATE TABLE {table} (id INT PRIMARY KEY, {}) \
         ENGINE=InnoDB ROW_FORMAT=COMPACT CHARACTER SET latin1",
        columns
            .iter()
            .map(|c| format!("{c} VARCHAR(1000)"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Db::MySql.execute(&services, &ddl).await;
    let wide = serde_json::Value::Object(
        std::iter::once(("id".to_string(), serde_json::json!(2)))
            .chain(
                columns
                    .iter()
                    .map(|c| (c.clone(), serde_json::json!("y".repeat(1000)))),
            )
            .collect(),
    )
    .to_string();
    let corpus = [
        br#"{"id": 1, "c1": "a"}"#.to_vec(),
        wide.into_bytes(),
        br#"{"id": 3, "c12": "c"}"#.to_vec(),
    ];
    let kafka = Kafka::new(&services.kafka_bootstrap);
    kafka.create_topic(&topic, 1).await.unwrap();
    kafka
        .produce_to(&topic, corpus.iter().map(|v| (Some(0), None, v.as_slice())))
        .await
        .unwrap();

    let mut sink = manifest(&services, Db::MySql, &name, &topic, &table);
    sink.spec.write.linger_ms = 50;
    let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
    let running = RunningSink::start(config(&sink)).await;
    let group = running.group();
    eventually(
        "every message committed",
        Duration::from_secs(60),
        || async {
            (committed(&services, &group, &topic).await.get(&0) == Some(&Some(3))).then_some(())
        },
    )
    .await;
    running.stop().await;

    let rows = Db::MySql
        .rows(
            &services,
            &format!("SELECT CAST(id AS CHAR), c1, c12 FROM {table} ORDER BY id"),
        )
        .await;
    assert_eq!(
        rows,
        vec![
            vec![Some("1".into()), Some("a".into()), None],
            vec![Some("3".into()), None, Some("c".into())],
        ]
    );
    let failed: Vec<Read> = read_topic(&services, &topics.error).await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].headers["__connect.errors.offset"], "1");
    assert_eq!(
        failed[0].headers["__connect.errors.exception.class.name"],
        "DataRejected"
    );
    assert!(
        failed[0].headers["__connect.errors.exception.message"].contains("Row size too large"),
        "{:?}",
        failed[0].headers
    );
}
