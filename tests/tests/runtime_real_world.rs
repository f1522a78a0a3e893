//! Input as production sends it: compressed topics, records far larger than the average,
//! partial updates under Upsert, keys that are missing, configuration mistakes that are no bad
//! rows, and `Latest` groups with partitions that have nothing committed.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use sqlx::Connection;

use adbsink_crd::{AnalyticDBSink, FailurePolicy, InitialOffset, MessageFormat, WriteMode};
use adbsink_runtime::records::{StatusRecord, TaskState};
use adbsink_tests::harness::{
    Db, RunningSink, committed_to, config, manifest, provisioner, read_topic, table_and_topic,
};
use adbsink_tests::{Kafka, Services, eventually, unique};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// Every Kafka codec, one per partition of one topic, multi-record batches: every row lands.
async fn compressed_topics(db: Db) {
    let services = Services::from_env();
    let name = unique("codecs");
    let (topic, table) = (format!("{name}-in"), name.replace('-', "_"));
    let text = if db == Db::Postgres {
        "text"
    } else {
        "VARCHAR(64)"
    };
    db.execute(
        &services,
        &format!("CREATE TABLE {table} (id bigint PRIMARY KEY, codec {text})"),
    )
    .await;
    let kafka = Kafka::new(&services.kafka_bootstrap);
    kafka
        .create_topic(&topic, CODECS.len() as i32)
        .await
        .unwrap();
    let per_codec = 200;
    for (partition, codec) in CODECS.iter().enumerate() {
        let values: Vec<Vec<u8>> = (0..per_codec)
            .map(|i| {
                let id = partition * per_codec + i;
                format!(r#"{{"id": {id}, "codec": "{codec}"}}"#).into_bytes()
            })
            .collect();
        kafka
            .produce_batched(&topic, partition as i32, codec, &values)
            .await
            .unwrap();
    }
    let mut sink = manifest(&services, db, &name, &topic, &table);
    sink.spec.write.linger_ms = 50;
    let running = RunningSink::start(config(&sink)).await;
    let expected = (CODECS.len() * per_codec) as i64;
    eventually(
        "every compressed record in the table",
        Duration::from_secs(60),
        || async { (db.count(&services, &table).await == expected).then_some(()) },
    )
    .await;
    running.stop().await;
    for codec in CODECS {
        let rows = db
            .rows(
                &services,
                &format!("SELECT CAST(COUNT(*) AS CHAR(20)) FROM {table} WHERE codec = '{codec}'"),
            )
            .await;
        assert_eq!(rows[0][0].as_deref().map(str::trim), Some("200"), "{codec}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_every_kafka_codec() {
    compressed_topics(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_reads_every_kafka_codec() {
    compressed_topics(Db::MySql).await;
}

/// A 3 MiB value that is no JSON sits between good records. It reaches the dead-letter topic
/// (whole where the topic takes it, else truncated with headers that say so) and the records
/// behind it are written and committed: nothing stalls.
/// A PostgreSQL table `(id bigint, v text)` and a source topic that takes records of up to
/// 8 MiB, with a sink between them: where records far larger than the broker's usual 1 MiB
/// limit come from. Returns the services, the sink's name, topic, table, broker and manifest.
async fn big_records(prefix: &str) -> (Services, String, String, String, Kafka, AnalyticDBSink) {
    let services = Services::from_env();
    let name = unique(prefix);
    let (topic, table) = (format!("{name}-in"), name.replace('-', "_"));
    Db::Postgres
        .execute(
            &services,
            &format!("CREATE TABLE {table} (id bigint, v text)"),
        )
        .await;
    let kafka = Kafka::new(&services.kafka_bootstrap);
    kafka
        .create_topic_with(&topic, 1, &[("max.message.bytes", "8388608")])
        .await
        .unwrap();
    let mut sink = manifest(&services, Db::Postgres, &name, &topic, &table);
    sink.spec.write.linger_ms = 50;
    (services, name, topic, table, kafka, sink)
}

async fn big_bad_record(dead_letter_limit: Option<usize>) {
    let (services, name, topic, table, kafka, sink) = big_records("big").await;
    let db = Db::Postgres;
    let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
    if let Some(limit) = dead_letter_limit {
        // The administrator made the dead-letter topic, with the broker's usual limit.
        kafka
            .create_topic_with(
                &topics.dead_letter,
                6,
                &[("max.message.bytes", &limit.to_string())],
            )
            .await
            .unwrap();
    }
    let big = vec![b'x'; 3 << 20];
    let good = |id: i64| format!(r#"{{"id": {id}, "v": "after"}}"#).into_bytes();
    let values = [good(1), big.clone(), good(2), good(3)];
    kafka
        .produce_to(&topic, values.iter().map(|v| (Some(0), None, v.as_slice())))
        .await
        .unwrap();
    let running = RunningSink::start(config(&sink)).await;
    let group = running.group();
    committed_to(&services, &group, &topic, 4).await;
    running.stop().await;
    assert_eq!(db.count(&services, &table).await, 3);
    let dead = read_topic(&services, &topics.dead_letter).await;
    assert_eq!(dead.len(), 1, "one copy, not one per retry");
    let copy = &dead[0];
    assert_eq!(copy.headers["__connect.errors.offset"], "1");
    assert_eq!(copy.headers["__connect.errors.topic"], topic);
    match dead_letter_limit {
        None => {
            assert!(copy.value.as_deref() == Some(big.as_slice()), "whole");
            assert!(!copy.headers.contains_key("__adbsink.errors.truncated"));
        }
        Some(limit) => {
            let value = copy.value.as_deref().unwrap_or_default();
            assert!(
                value.len() < limit && big.starts_with(value),
                "{}",
                value.len()
            );
            assert_eq!(copy.headers["__adbsink.errors.truncated"], "true");
            assert_eq!(
                copy.headers["__adbsink.errors.original.size"],
                big.len().to_string()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_bad_record_reaches_a_dead_letter_topic_sized_for_the_source() {
    big_bad_record(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_bad_record_too_large_for_its_topic_is_truncated_not_stalled() {
    big_bad_record(Some(1 << 20)).await;
}

/// A database quotes the value it refuses in its error: a record with a 1.5 MB string in an
/// integer column carried a 1.5 MB reason header (and log line), larger than the error topic
/// takes. Tansu took the copy; a broker that counts headers in the limit refused even the copy
/// with its value cut to nothing, and the produce loop spun (the shrinking to a bare copy and
/// then backing off is `deadletter::tests`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_quoting_a_huge_value_still_reaches_a_small_error_topic() {
    let (services, name, topic, table, kafka, sink) = big_records("huge-reason").await;
    let db = Db::Postgres;
    let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
    assert_eq!(topics.error, topics.dead_letter, "one topic by default");
    kafka
        .create_topic_with(&topics.error, 6, &[("max.message.bytes", "1048576")])
        .await
        .unwrap();
    // Random letters: the producer compresses, and a repeated text would fit the topic.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let letters: String = (0..1_500_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            char::from(b'a' + (seed % 26) as u8)
        })
        .collect();
    let huge = format!(r#"{{"id": "{letters}", "v": "bad"}}"#);
    let good = |id: i64| format!(r#"{{"id": {id}, "v": "after"}}"#);
    let values = [good(1), huge.clone(), good(2)];
    kafka
        .produce_to(&topic, values.iter().map(|v| (Some(0), None, v.as_bytes())))
        .await
        .unwrap();
    let running = RunningSink::start(config(&sink)).await;
    committed_to(&services, &running.group(), &topic, 3).await;
    running.stop().await;
    assert_eq!(db.count(&services, &table).await, 2);
    let errors = read_topic(&services, &topics.error).await;
    assert_eq!(errors.len(), 1);
    let reason = &errors[0].headers["__connect.errors.exception.message"];
    assert!(
        reason.len() < 8192 && reason.contains("bigint") && reason.contains("bytes in all"),
        "{} bytes: {}",
        reason.len(),
        &reason[..reason.len().min(200)]
    );
    assert_eq!(errors[0].headers["__connect.errors.offset"], "1");
}

/// MariaDB refusing one row through a trigger's SIGNAL (1644) or a value for a generated column
/// (1906) is about that row: it goes to the error topic and the rest is written. Both were
/// taken for outages and retried for ever, the partition stuck in RETRYING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_rows_a_trigger_or_a_generated_column_refuses_go_to_the_error_topic() {
    let services = Services::from_env();
    let db = Db::MySql;
    let name = unique("my-signal");
    let (topic, table) = (format!("{name}-in"), name.replace('-', "_"));
    db.execute(
        &services,
        &format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, v varchar(16), \
             twice bigint AS (id * 2) VIRTUAL)"
        ),
    )
    .await;
    let mut conn = sqlx::MySqlConnection::connect(&services.mysql_url)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TRIGGER {table}_check BEFORE INSERT ON {table} FOR EACH ROW \
         IF NEW.v = 'bad' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'v must not be bad'; \
         END IF"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    Kafka::new(&services.kafka_bootstrap)
        .create_topic(&topic, 1)
        .await
        .unwrap();
    let mut sink = manifest(&services, db, &name, &topic, &table);
    sink.spec.write.linger_ms = 50;
    let messages = [
        r#"{"id": 1, "v": "ok"}"#,
        r#"{"id": 2, "v": "bad"}"#,
        r#"{"id": 3, "v": "ok", "twice": 7}"#,
        r#"{"id": 4, "v": "ok"}"#,
    ];
    write_through(&services, &sink, &topic, &messages).await;
    assert_eq!(
        lines(
            &services,
            db,
            &format!("SELECT CAST(id AS CHAR), v, CAST(twice AS CHAR) FROM {table} ORDER BY id")
        )
        .await,
        vec!["1 ok 2", "4 ok 8"]
    );
    let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
    let errors = read_topic(&services, &topics.error).await;
    let mut refused: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| {
            (
                e.headers["__connect.errors.offset"].as_str(),
                e.headers["__connect.errors.exception.message"].as_str(),
            )
        })
        .collect();
    refused.sort();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].0, "1");
    assert!(refused[0].1.contains("v must not be bad"), "{refused:?}");
    assert_eq!(refused[1].0, "2");
    assert!(refused[1].1.contains("twice"), "{refused:?}");
}

/// Under Stop nothing of the first refused record reaches the table. A Debezium update that
/// moves a key is two changes, the old row's delete and the new row's write; when the database
/// refused the write, isolation had already committed the delete, and the halted sink left the
/// table without either row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_policy_keeps_the_old_row_of_a_refused_key_move() {
    let services = Services::from_env();
    let db = Db::Postgres;
    let name = unique("stop-move");
    let (topic, table) = (format!("{name}-in"), name.replace('-', "_"));
    db.execute(
        &services,
        &format!("CREATE TABLE {table} (id bigint PRIMARY KEY, name text NOT NULL)"),
    )
    .await;
    let kafka = Kafka::new(&services.kafka_bootstrap);
    kafka.create_topic(&topic, 1).await.unwrap();
    let source = r#""source": {"db": "shop", "table": "orders"}"#;
    let messages = [
        format!(r#"{{"op": "c", "before": null, "after": {{"id": 1, "name": "a"}}, {source}}}"#),
        format!(
            r#"{{"op": "u", "before": {{"id": 1, "name": "a"}}, "after": {{"id": 2, "name": null}}, {source}}}"#
        ),
    ];
    let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
    produce(&kafka, &topic, &messages).await;
    let mut sink = manifest(&services, db, &name, &topic, &table);
    sink.spec.write.format = MessageFormat::DebeziumJson;
    sink.spec.write.write_mode = WriteMode::Upsert;
    sink.spec.write.primary_key = vec!["id".into()];
    sink.spec.write.source_table = Some("orders".into());
    sink.spec.write.linger_ms = 50;
    sink.spec.runtime.failure_policy = FailurePolicy::Stop;
    let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
    let running = RunningSink::start(config(&sink)).await;
    let group = running.group();
    let failed = eventually("a FAILED task", Duration::from_secs(60), || async {
        let status = provisioner(&services)
            .read_latest::<StatusRecord>(&topics.status)
            .await
            .ok()?;
        status.into_values().find(|t| t.state == TaskState::Failed)
    })
    .await;
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("@1"),
        "{failed:?}"
    );
    committed_to(&services, &group, &topic, 1).await;
    running.stop().await;
    assert_eq!(
        lines(
            &services,
            db,
            &format!("SELECT id::text, name FROM {table}")
        )
        .await,
        vec!["1 a"],
        "the record before the refused one, and nothing of it"
    );
}

/// The same messages give the same table on both databases: each message updates the columns
/// it carries, in order, inside one batch and across batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_updates_the_columns_a_message_carries_the_same_on_both_databases() {
    let services = Services::from_env();
    let first = [
        r#"{"id": 1, "a": "a1", "b": "b1"}"#,
        r#"{"id": 2, "a": "x"}"#,
        r#"{"id": 1, "b": "b2"}"#,
        r#"{"id": 1, "c": 5}"#,
        r#"{"id": 3, "a": "gone", "c": 1}"#,
        r#"{"id": 3, "a": null}"#,
    ];
    let second = [
        r#"{"id": 2, "b": "y"}"#,
        r#"{"id": 1, "a": "a3"}"#,
        r#"{"id": 4, "c": 9}"#,
    ];
    let expected = vec![
        vec![
            Some("1".into()),
            Some("a3".into()),
            Some("b2".into()),
            Some("5".into()),
        ],
        vec![
            Some("2".into()),
            Some("x".into()),
            Some("y".into()),
            Some("7".into()),
        ],
        vec![Some("3".into()), None, None, Some("1".into())],
        vec![Some("4".into()), None, None, Some("9".into())],
    ];
    for db in [Db::Postgres, Db::MySql] {
        let name = unique("upsert-sem");
        let (topic, table) = (format!("{name}-in"), name.replace('-', "_"));
        let (text, int) = if db == Db::Postgres {
            ("text", "int")
        } else {
            ("VARCHAR(16)", "INT")
        };
        db.execute(
            &services,
            &format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, a {text}, b {text}, c {int} DEFAULT 7)"
            ),
        )
        .await;
        let kafka = Kafka::new(&services.kafka_bootstrap);
        kafka.create_topic(&topic, 1).await.unwrap();
        produce(&kafka, &topic, &first).await;
        let mut sink = manifest(&services, db, &name, &topic, &table);
        sink.spec.write.write_mode = WriteMode::Upsert;
        sink.spec.write.primary_key = vec!["id".into()];
        sink.spec.write.linger_ms = 500;
        let running = RunningSink::start(config(&sink)).await;
        let group = running.group();
        committed_to(&services, &group, &topic, first.len() as i64).await;
        produce(&kafka, &topic, &second).await;
        committed_to(
            &services,
            &group,
            &topic,
            (first.len() + second.len()) as i64,
        )
        .await;
        running.stop().await;
        let cast = if db == Db::Postgres { "text" } else { "CHAR" };
        let rows = db
            .rows(
                &services,
                &format!(
                    "SELECT CAST(id AS {cast}), a, b, CAST(c AS {cast}) FROM {table} ORDER BY id"
                ),
            )
            .await;
        assert_eq!(rows, expected, "{db:?}");
    }
}

/// PostgreSQL Upsert copies a batch of new keys straight into the table, and merges a batch
/// that holds a stored key, which keeps the columns its message leaves out. A trigger logs the
/// statement each row came by; rows of a copy that failed are not logged twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upsert_copies_new_keys_and_merges_stored_ones() {
    let services = Services::from_env();
    let db = Db::Postgres;
    let (name, topic, table) = table_and_topic(
        &services,
        db,
        "fresh",
        "(id bigint PRIMARY KEY, v text, n int NOT NULL DEFAULT 7)",
        1,
    )
    .await;
    let mut conn = sqlx::PgConnection::connect(&services.pg_url).await.unwrap();
    sqlx::raw_sql(&format!(
        "INSERT INTO {table} VALUES (1, 'stored', 1);
         CREATE TABLE {table}_log (id bigint, via text);
         CREATE FUNCTION {table}_log() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO {table}_log VALUES (NEW.id, split_part(current_query(), ' ', 1));
             RETURN NEW;
         END $$;
         CREATE TRIGGER log BEFORE INSERT ON {table}
             FOR EACH ROW EXECUTE FUNCTION {table}_log();"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let messages = [
        r#"{"id": 10, "v": "new"}"#,
        r#"{"id": 11, "v": "new"}"#,
        r#"{"id": 1, "v": "updated"}"#,
        r#"{"id": 12, "v": "new"}"#,
    ];
    let sink = upsert_in_pairs(&services, db, &name, &topic, &table);
    write_through(&services, &sink, &topic, &messages).await;
    let rows = db
        .rows(
            &services,
            &format!("SELECT id::text, v, n::text FROM {table} ORDER BY id"),
        )
        .await;
    let row = |id: &str, v: &str, n: &str| vec![Some(id.into()), Some(v.into()), Some(n.into())];
    assert_eq!(
        rows,
        [
            row("1", "updated", "1"),
            row("10", "new", "7"),
            row("11", "new", "7"),
            row("12", "new", "7"),
        ]
    );
    let log = db
        .rows(
            &services,
            &format!("SELECT id::text, via FROM {table}_log ORDER BY id"),
        )
        .await;
    let by = |id: &str| -> Vec<Option<String>> {
        log.iter()
            .filter(|r| r[0].as_deref() == Some(id))
            .map(|r| r[1].clone())
            .collect()
    };
    // The first batch holds id 10 and no stored key, and goes first, alone.
    assert_eq!(by("10"), [Some("COPY".to_string())], "{log:?}");
    assert_eq!(by("1"), [Some("INSERT".to_string())], "merged: {log:?}");
    assert_eq!(by("11").len(), 1, "{log:?}");
    assert_eq!(by("12").len(), 1, "{log:?}");
}

/// MySQL Upsert inserts a batch of new keys with plain INSERTs, rows that carry different
/// columns in one statement, and upserts a batch that holds a stored key (on the primary key
/// or on another unique key), which keeps the columns its messages leave out; a new key with a
/// bad value is isolated as before. The server's general log shows which statement each batch
/// came by (a try undone to its savepoint is logged too, then the upsert).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_upsert_inserts_new_keys_and_upserts_stored_ones() {
    let services = Services::from_env();
    let db = Db::MySql;
    let (name, topic, table) = table_and_topic(
        &services,
        db,
        "fresh",
        "(id BIGINT PRIMARY KEY, v TEXT, w TEXT, n INT NOT NULL DEFAULT 7, u INT UNIQUE)",
        1,
    )
    .await;
    db.execute(
        &services,
        &format!("INSERT INTO {table} (id, v, w, n, u) VALUES (1, 'stored', 'kept', 1, 100)"),
    )
    .await;
    let messages = [
        // New keys leaving out different columns: one plain INSERT text.
        r#"{"id": 10, "v": "new"}"#,
        r#"{"id": 11, "w": "new"}"#,
        // A stored key: the try fails on the primary key, the batch is upserted.
        r#"{"id": 1, "v": "updated"}"#,
        r#"{"id": 12, "v": "new", "n": 3}"#,
        // A new id whose unique u is stored: upserted onto row 1, as before.
        r#"{"id": 13, "u": 100, "w": "via u"}"#,
        r#"{"id": 14, "v": "new"}"#,
        // A new key with a value MySQL refuses: the try fails, the upsert isolates it.
        r#"{"id": 15, "n": "abc"}"#,
        r#"{"id": 16, "v": "new"}"#,
    ];
    let sink = upsert_in_pairs(&services, db, &name, &topic, &table);
    let errors = adbsink_crd::resolved_topics(&name, &sink.spec.runtime).error;
    let log = GeneralLog::on(&services).await;
    write_through(&services, &sink, &topic, &messages).await;
    let statements = log.off(&table).await;
    let rows = lines(
        &services,
        db,
        &format!("SELECT CAST(id AS CHAR), v, w, CAST(n AS CHAR), CAST(u AS CHAR) FROM {table} ORDER BY id"),
    )
    .await;
    assert_eq!(
        rows,
        [
            "1 updated via u 1 100",
            "10 new - 7 -",
            "11 - new 7 -",
            "12 new - 3 -",
            "14 new - 7 -",
            "16 new - 7 -",
        ]
    );
    let failed = read_topic(&services, &errors).await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].value.as_deref(), Some(messages[6].as_bytes()));

    let by = |id: &str| -> Vec<&'static str> {
        statements
            .iter()
            .filter(|s| s.contains(&format!("('{id}', ")))
            .map(|s| {
                if s.contains("ON DUPLICATE KEY UPDATE") {
                    "upsert"
                } else {
                    "insert"
                }
            })
            .collect()
    };
    // The first batch holds id 10 alone: its rows, and id 11's, leave out different columns.
    assert_eq!(by("10"), ["insert"], "{statements:#?}");
    assert_eq!(by("11"), ["insert"], "{statements:#?}");
    assert_eq!(by("1").last(), Some(&"upsert"), "{statements:#?}");
    assert_eq!(by("13").last(), Some(&"upsert"), "{statements:#?}");
}

/// An Upsert sink on `id`, one task, writing the topic's messages two at a time, in order:
/// every message is on the topic before it starts, and a batch waits for its second row
/// however slowly the messages come.
fn upsert_in_pairs(
    services: &Services,
    db: Db,
    name: &str,
    topic: &str,
    table: &str,
) -> AnalyticDBSink {
    let mut sink = manifest(services, db, name, topic, table);
    sink.spec.source.concurrency = 1;
    sink.spec.write.max_batch_rows = 2;
    sink.spec.write.linger_ms = 60_000;
    sink.spec.write.write_mode = WriteMode::Upsert;
    sink.spec.write.primary_key = vec!["id".into()];
    sink
}

/// The server's general log, kept in `mysql.general_log` while a test runs: what statements
/// reached the server, prepared ones with their values.
struct GeneralLog(String);

impl GeneralLog {
    async fn on(services: &Services) -> Self {
        Db::MySql
            .execute(
                services,
                "SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = ON",
            )
            .await;
        Self(services.mysql_url.clone())
    }

    /// Turns the log off; the statements that named `table`.
    async fn off(&self, table: &str) -> Vec<String> {
        let mut conn = sqlx::MySqlConnection::connect(&self.0).await.unwrap();
        sqlx::raw_sql("SET GLOBAL general_log = OFF")
            .execute(&mut conn)
            .await
            .unwrap();
        let statements: Vec<String> = sqlx::query_scalar(
            "SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log \
             WHERE command_type = 'Execute' AND argument LIKE CONCAT('%', ?, '%') \
             ORDER BY event_time",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        sqlx::raw_sql("TRUNCATE TABLE mysql.general_log")
            .execute(&mut conn)
            .await
            .unwrap();
        statements
    }
}

/// A test that fails before it reads the log must not leave every later statement logged.
impl Drop for GeneralLog {
    fn drop(&mut self) {
        let url = self.0.clone();
        let off = std::thread::spawn(move || -> Result<(), sqlx::Error> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = sqlx::MySqlConnection::connect(&url).await?;
                sqlx::raw_sql("SET GLOBAL general_log = OFF")
                    .execute(&mut conn)
                    .await
                    .map(drop)
            })
        });
        let _ = off.join();
    }
}

/// PostgreSQL Insert copies rows that leave out different columns together when leaving a
/// column out stores NULL, and apart when it stores a default (a column default, a domain's,
/// an identity, a generated column), so each row gets exactly what an INSERT without the
/// column gives it. A statement trigger logs which ids each COPY wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_insert_copies_rows_that_leave_out_null_default_columns_together() {
    let services = Services::from_env();
    let db = Db::Postgres;
    let domain = unique("dom").replace('-', "_");
    db.execute(
        &services,
        &format!("CREATE DOMAIN {domain} AS int DEFAULT 42"),
    )
    .await;
    let (name, topic, table) = table_and_topic(
        &services,
        db,
        "fill",
        &format!(
            "(id bigint PRIMARY KEY, a text, b text, n int DEFAULT 7, d {domain}, \
             s bigint GENERATED BY DEFAULT AS IDENTITY, g bigint GENERATED ALWAYS AS (id * 2) STORED)"
        ),
        1,
    )
    .await;
    let mut conn = sqlx::PgConnection::connect(&services.pg_url).await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TABLE {table}_log (ids bigint[]);
         CREATE FUNCTION {table}_log() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO {table}_log SELECT array_agg(id ORDER BY id) FROM new_rows;
             RETURN NULL;
         END $$;
         CREATE TRIGGER log AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
             FOR EACH STATEMENT EXECUTE FUNCTION {table}_log();"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let messages = [
        r#"{"id": 1, "a": "a1"}"#,
        r#"{"id": 2, "b": "b2"}"#,
        r#"{"id": 3}"#,
        r#"{"id": 4, "a": null, "b": "b4", "n": 1}"#,
        r#"{"id": 5, "d": 5, "s": 500}"#,
        r#"{"id": 6, "a": "a6", "b": "b6"}"#,
    ];
    let mut sink = manifest(&services, db, &name, &topic, &table);
    sink.spec.source.concurrency = 1;
    write_through(&services, &sink, &topic, &messages).await;
    // One line per row, `-` for NULL; the identity column shows whether it was assigned,
    // except where the message set it.
    let rows = lines(
        &services,
        db,
        &format!(
            "SELECT id::text, a, b, n::text, d::text, \
             CASE WHEN id = 5 THEN s::text ELSE (s IS NOT NULL)::text END, g::text \
             FROM {table} ORDER BY id"
        ),
    )
    .await;
    assert_eq!(
        rows,
        [
            "1 a1 - 7 42 true 2",
            "2 - b2 7 42 true 4",
            "3 - - 7 42 true 6",
            "4 - b4 1 42 true 8",
            "5 - - 7 5 500 10",
            "6 a6 b6 7 42 true 12",
        ]
    );
    // 1, 2, 3 and 6 differ only in columns that default to NULL: one COPY. 4 sets a column
    // with a default and 5 a domain and an identity column: each copied apart.
    let mut statements: Vec<String> = db
        .rows(&services, &format!("SELECT ids::text FROM {table}_log"))
        .await
        .into_iter()
        .filter_map(|r| r[0].clone())
        .collect();
    statements.sort();
    assert_eq!(statements, ["{1,2,3,6}", "{4}", "{5}"]);
}

/// The table's description names every unique key (composite ones in index order), which
/// columns a sequence fills, and whether rows constrain one another otherwise (a foreign key
/// to the table itself, a unique index on an expression): what decides whether two batches
/// may be written at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_description_names_the_unique_keys_and_what_else_ties_rows_together() {
    use adbsink_runtime::table::Equality;
    let services = Services::from_env();
    for db in [Db::Postgres, Db::MySql] {
        let columns = match db {
            Db::Postgres => {
                "(id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, a int, b int, \
                 email text UNIQUE, n bigserial, UNIQUE (b, a))"
            }
            Db::MySql => {
                "(id bigint AUTO_INCREMENT PRIMARY KEY, a int, b int, email varchar(64) UNIQUE, \
                 n bigint, UNIQUE KEY (b, a))"
            }
        };
        let (name, topic, table) = table_and_topic(&services, db, "constraints", columns, 1).await;
        let sink = manifest(&services, db, &name, &topic, &table);
        let database = adbsink_runtime::database::Database::connect(&config(&sink).database, 1);
        let described = database.describe().await.unwrap();
        let mut unique = described.unique.clone();
        unique.sort();
        assert_eq!(unique, [vec![0], vec![2, 1], vec![3]], "{db:?}");
        assert!(!described.entangled, "{db:?}");
        let sequences: Vec<&str> = described
            .columns
            .iter()
            .filter(|c| c.sequence)
            .map(|c| c.name.as_str())
            .collect();
        let expected: &[&str] = match db {
            Db::Postgres => &["id", "n"],
            Db::MySql => &["id"],
        };
        assert_eq!(sequences, expected, "{db:?}");
        // How values compare: a whole number, and text as written or folded by its collation.
        let email = match db {
            Db::Postgres => Equality::Text,
            Db::MySql => Equality::Folded,
        };
        let equality: Vec<Equality> = described.columns.iter().map(|c| c.equality).collect();
        assert_eq!(
            equality[..4],
            [
                Equality::Integer,
                Equality::Integer,
                Equality::Integer,
                email
            ],
            "{db:?}"
        );
        db.execute(
            &services,
            &format!("ALTER TABLE {table} ADD FOREIGN KEY (n) REFERENCES {table} (id)"),
        )
        .await;
        assert!(
            database.describe().await.unwrap().entangled,
            "{db:?}: a self reference"
        );
        database.close().await;
    }
    // Only an index's key columns are unique (not its INCLUDE columns); a MySQL prefix index
    // holds unique only the start of a value. How text, uuid and padded columns compare.
    for db in [Db::Postgres, Db::MySql] {
        let (columns, index, expected) = match db {
            Db::Postgres => (
                "(id uuid, a varchar, b varchar(8), c char(4), d text COLLATE \"C\")",
                "CREATE UNIQUE INDEX ON {table} (id) INCLUDE (a)",
                [
                    Equality::Uuid,
                    Equality::Text,
                    Equality::Trimmed,
                    Equality::Trimmed,
                    Equality::Text,
                ],
            ),
            Db::MySql => (
                "(id varchar(40), a varchar(8) COLLATE utf8mb4_bin, \
                 b varchar(8) COLLATE utf8mb4_hungarian_ci, c char(4), d decimal(10, 2))",
                "CREATE UNIQUE INDEX prefix ON {table} (id(8))",
                [
                    Equality::Folded,
                    Equality::Folded,
                    Equality::Other,
                    Equality::Folded,
                    Equality::Other,
                ],
            ),
        };
        let (name, topic, table) = table_and_topic(&services, db, "kinds", columns, 1).await;
        db.execute(&services, &index.replace("{table}", &table))
            .await;
        let sink = manifest(&services, db, &name, &topic, &table);
        let database = adbsink_runtime::database::Database::connect(&config(&sink).database, 1);
        let described = database.describe().await.unwrap();
        let equality: Vec<Equality> = described.columns.iter().map(|c| c.equality).collect();
        assert_eq!(equality, expected, "{db:?}");
        match db {
            Db::Postgres => assert!(described.unique == [vec![0]] && !described.entangled),
            Db::MySql => assert!(described.unique.is_empty() && described.entangled),
        }
        database.close().await;
    }
    let db = Db::Postgres;
    let (name, topic, table) =
        table_and_topic(&services, db, "expression", "(id bigint, email text)", 1).await;
    db.execute(
        &services,
        &format!("CREATE UNIQUE INDEX ON {table} (id, lower(email))"),
    )
    .await;
    let sink = manifest(&services, db, &name, &topic, &table);
    let database = adbsink_runtime::database::Database::connect(&config(&sink).database, 1);
    let described = database.describe().await.unwrap();
    assert!(described.unique.is_empty() && described.entangled);
}

/// MySQL Insert writes rows that leave out different nullable columns with one statement
/// text (binding NULL for what a row leaves out), and keeps apart rows that leave out a column
/// whose default is not NULL: a default value, MariaDB's string default `'NULL'`, an
/// auto-increment, a generated column. Each row gets exactly what an INSERT without the column
/// gives it, and the table's description says which columns may be filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_insert_fills_only_columns_that_default_to_null() {
    let services = Services::from_env();
    let db = Db::MySql;
    let (name, topic, table) = table_and_topic(
        &services,
        db,
        "fill",
        "(id bigint PRIMARY KEY, a TEXT, b VARCHAR(8) DEFAULT NULL, n INT DEFAULT 7, \
         q VARCHAR(8) DEFAULT 'NULL', s BIGINT NOT NULL AUTO_INCREMENT, \
         g BIGINT AS (id * 2) STORED, t VARCHAR(8) NOT NULL, UNIQUE KEY (s))",
        1,
    )
    .await;
    let sink = manifest(&services, db, &name, &topic, &table);
    let described = adbsink_runtime::database::Database::connect(&config(&sink).database, 1)
        .describe()
        .await
        .unwrap();
    let fills: Vec<(&str, bool)> = described
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.defaults_to_null))
        .collect();
    assert_eq!(
        fills,
        [
            ("id", false),
            ("a", true),
            ("b", true),
            ("n", false),
            ("q", false),
            ("s", false),
            ("g", false),
            ("t", false),
        ]
    );
    let messages = [
        r#"{"id": 1, "a": "a1", "t": "t"}"#,
        r#"{"id": 2, "b": "b2", "t": "t"}"#,
        r#"{"id": 3, "t": "t"}"#,
        r#"{"id": 4, "a": null, "b": "b4", "n": 1, "t": "t"}"#,
        r#"{"id": 5, "q": "x", "s": 500, "t": "t"}"#,
        r#"{"id": 6, "a": "a6", "b": "b6", "t": "t"}"#,
    ];
    let mut sink = sink;
    sink.spec.source.concurrency = 1;
    write_through(&services, &sink, &topic, &messages).await;
    let rows = lines(
        &services,
        db,
        &format!(
            "SELECT CAST(id AS CHAR), a, b, CAST(n AS CHAR), q, \
             IF(id = 5, CAST(s AS CHAR), IF(s > 0, 'assigned', 'none')), CAST(g AS CHAR) \
             FROM {table} ORDER BY id"
        ),
    )
    .await;
    assert_eq!(
        rows,
        [
            "1 a1 - 7 NULL assigned 2",
            "2 - b2 7 NULL assigned 4",
            "3 - - 7 NULL assigned 6",
            "4 - b4 1 NULL assigned 8",
            "5 - - 7 x 500 10",
            "6 a6 b6 7 NULL assigned 12",
        ]
    );
}

/// A default set while the sink runs is what later rows that leave the column out get: the
/// sink fills columns whose default is NULL with NULL (one statement for rows leaving out
/// different ones), so it reads the table's description again within `DESCRIPTION_TTL`
/// instead of trusting the one it started with until it restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_set_while_the_sink_runs_is_honoured_within_the_description_ttl() {
    let services = Services::from_env();
    tokio::join!(
        default_set_while_running(
            &services,
            Db::Postgres,
            "(id bigint PRIMARY KEY, a text, b text)"
        ),
        default_set_while_running(
            &services,
            Db::MySql,
            "(id bigint PRIMARY KEY, a TEXT, b VARCHAR(16))"
        ),
    );
}

async fn default_set_while_running(services: &Services, db: Db, columns: &str) {
    let (name, topic, table) = table_and_topic(services, db, "late-default", columns, 1).await;
    let mut sink = manifest(services, db, &name, &topic, &table);
    sink.spec.source.concurrency = 1;
    // Each pair below in one batch, whatever the machine's pace: written once it holds two.
    sink.spec.write.max_batch_rows = 2;
    sink.spec.write.linger_ms = 60_000;
    let kafka = Kafka::new(&services.kafka_bootstrap);
    let running = RunningSink::start(config(&sink)).await;
    let group = running.group();
    // Two rows leaving out different columns, in one batch: the first one's `b` is filled with
    // NULL where the description says NULL is its default.
    let mut written = 0;
    let mut pair = async |id: i64| {
        let leaves_out_b = format!(r#"{{"id": {id}, "a": "x"}}"#);
        let sets_b = format!(r#"{{"id": {}, "b": "y"}}"#, id + 1);
        produce(&kafka, &topic, &[&leaves_out_b, &sets_b]).await;
        written += 2;
        committed_to(services, &group, &topic, written).await;
        lines(
            services,
            db,
            &format!("SELECT b FROM {table} WHERE id = {id}"),
        )
        .await
    };
    assert_eq!(pair(1).await, ["-"], "{db:?}");
    db.execute(
        services,
        &format!("ALTER TABLE {table} ALTER COLUMN b SET DEFAULT 'later'"),
    )
    .await;
    let set_at = std::time::Instant::now();
    let deadline = adbsink_runtime::sink::DESCRIPTION_TTL + Duration::from_secs(30);
    // A pair at a time, each waited for, until the row leaving `b` out gets the default.
    let mut id = 1;
    loop {
        assert!(
            set_at.elapsed() < deadline,
            "{db:?}: rows written {deadline:?} after the default was set still store NULL"
        );
        id += 2;
        if pair(id).await == ["later"] {
            break;
        }
    }
    // And the pair after it: the sink does not go back to the description it started with.
    assert_eq!(pair(id + 2).await, ["later"], "{db:?}");
    running.stop().await;
}

/// Produces `messages` (one partition), runs `sink` until it committed them all, stops it.
async fn write_through(services: &Services, sink: &AnalyticDBSink, topic: &str, messages: &[&str]) {
    produce(&Kafka::new(&services.kafka_bootstrap), topic, messages).await;
    let running = RunningSink::start(config(sink)).await;
    let group = running.group();
    committed_to(services, &group, topic, messages.len() as i64).await;
    running.stop().await;
}

/// The rows `sql` selects, one line each, cells joined by spaces and NULL shown as `-`.
async fn lines(services: &Services, db: Db, sql: &str) -> Vec<String> {
    db.rows(services, sql)
        .await
        .iter()
        .map(|r| {
            let cells: Vec<&str> = r.iter().map(|c| c.as_deref().unwrap_or("-")).collect();
            cells.join(" ")
        })
        .collect()
}

/// Produces `messages` to partition 0, one record per batch.
async fn produce(kafka: &Kafka, topic: &str, messages: &[&str]) {
    kafka
        .produce_to(
            topic,
            messages.iter().map(|m| (Some(0), None, m.as_bytes())),
        )
        .await
        .unwrap();
}

/// Upsert: a message without the key column, or with a null key, cannot be matched to a row:
/// each one reaches the error topic with its reason; `{}` and a message of unknown keys only
/// (Ignore) say there is nothing to write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_without_a_key_or_without_columns_each_reach_the_error_topic() {
    let services = Services::from_env();
    for db in [Db::Postgres, Db::MySql] {
        let (name, topic, table) = table_and_topic(
            &services,
            db,
            "nokey",
            "(id bigint PRIMARY KEY, v VARCHAR(16))",
            1,
        )
        .await;
        let kafka = Kafka::new(&services.kafka_bootstrap);
        let messages = [
            r#"{"id": 1, "v": "ok"}"#,
            r#"{"v": "no key"}"#,
            r#"{"v": "no key again"}"#,
            r#"{"id": null, "v": "null key"}"#,
            r#"{}"#,
            r#"{"other": 1}"#,
            r#"{"id": 2, "v": "ok"}"#,
        ];
        produce(&kafka, &topic, &messages).await;
        let mut sink = manifest(&services, db, &name, &topic, &table);
        sink.spec.write.write_mode = WriteMode::Upsert;
        sink.spec.write.primary_key = vec!["id".into()];
        sink.spec.write.unknown_fields = adbsink_crd::UnknownFields::Ignore;
        sink.spec.write.linger_ms = 50;
        let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
        let running = RunningSink::start(config(&sink)).await;
        let group = running.group();
        committed_to(&services, &group, &topic, 7).await;
        running.stop().await;
        assert_eq!(db.count(&services, &table).await, 2, "{db:?}");
        let mut failed: Vec<(String, String)> = read_topic(&services, &topics.error)
            .await
            .into_iter()
            .map(|r| {
                (
                    r.headers["__connect.errors.offset"].clone(),
                    r.headers["__connect.errors.exception.class.name"].clone(),
                )
            })
            .collect();
        failed.sort();
        let expected: Vec<(String, String)> = [
            ("1", "MissingKey"),
            ("2", "MissingKey"),
            ("3", "NullKey"),
            ("4", "NoColumns"),
            ("5", "NoColumns"),
        ]
        .iter()
        .map(|(o, c)| (o.to_string(), c.to_string()))
        .collect();
        assert_eq!(failed, expected, "{db:?}");
    }
}

/// A setup mistake is no bad row: Upsert onto a table with no unique index matching the key
/// (PostgreSQL 42P10) is retried with the reason in the task status, nothing reaches the
/// error topic, and once the index exists every row is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_the_key_index_is_retried_not_drained_into_the_error_topic() {
    setup_mistake_is_retried(
        "noindex",
        "(id bigint NOT NULL, v text)",
        None,
        "ON CONFLICT",
        "ALTER TABLE {table} ADD PRIMARY KEY (id)",
    )
    .await;
}

/// The same for a table with an insert rule, which `ON CONFLICT` refuses (0A000): the Upsert
/// copy, which would ignore the rule, does not stand in for the merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_an_insert_rule_is_retried_not_copied_around_the_rule() {
    setup_mistake_is_retried(
        "rule",
        "(id bigint PRIMARY KEY, v text)",
        Some("CREATE RULE {table}_r AS ON INSERT TO {table} DO ALSO NOTIFY {table}"),
        "rules",
        "DROP RULE {table}_r ON {table}",
    )
    .await;
}

/// Upsert of five rows onto a table made with `columns` and `setup` retries with `reason` in
/// the task status and sends nothing to the error topic; after `fix` every row is written.
/// `{table}` in the SQL stands for the table's name.
async fn setup_mistake_is_retried(
    prefix: &str,
    columns: &str,
    setup: Option<&str>,
    reason: &str,
    fix: &str,
) {
    let services = Services::from_env();
    let db = Db::Postgres;
    let (name, topic, table) = table_and_topic(&services, db, prefix, columns, 1).await;
    if let Some(setup) = setup {
        db.execute(&services, &setup.replace("{table}", &table))
            .await;
    }
    let kafka = Kafka::new(&services.kafka_bootstrap);
    let messages: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"id": {i}, "v": "v"}}"#))
        .collect();
    kafka
        .produce_to(
            &topic,
            messages.iter().map(|m| (Some(0), None, m.as_bytes())),
        )
        .await
        .unwrap();
    let mut sink = manifest(&services, db, &name, &topic, &table);
    sink.spec.write.write_mode = WriteMode::Upsert;
    sink.spec.write.primary_key = vec!["id".into()];
    sink.spec.write.linger_ms = 50;
    let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
    let running = RunningSink::start(config(&sink)).await;
    let retrying = eventually("a RETRYING task", Duration::from_secs(60), || async {
        let status = provisioner(&services)
            .read_latest::<StatusRecord>(&topics.status)
            .await
            .ok()?;
        status
            .into_values()
            .find(|t| t.state == TaskState::Retrying)
    })
    .await;
    let last_error = retrying.last_error.unwrap_or_default();
    assert!(last_error.contains(reason), "{last_error}");
    assert_eq!(db.count(&services, &table).await, 0, "nothing written");
    assert!(read_topic(&services, &topics.error).await.is_empty());
    db.execute(&services, &fix.replace("{table}", &table)).await;
    eventually("the rows once fixed", Duration::from_secs(90), || async {
        (db.count(&services, &table).await == 5).then_some(())
    })
    .await;
    running.stop().await;
    assert!(read_topic(&services, &topics.error).await.is_empty());
}

/// `initialOffset: Latest` applies once, when the group is created. A partition the group has
/// no commit for (a group made by hand, or one whose offsets expired) starts at its oldest
/// record, not at its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_never_skips_a_partition_without_a_committed_offset() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    let services = Services::from_env();
    let db = Db::Postgres;
    let (name, topic, table) =
        table_and_topic(&services, db, "latest", "(id bigint, v text)", 2).await;
    adbsink_tests::harness::produce_ids(&services, &topic, 0..10, 2).await;
    // The group exists, with a commit for partition 0 only (at its end).
    let group = adbsink_crd::default_consumer_group(&name);
    {
        let (bootstrap, group, topic) = (
            services.kafka_bootstrap.clone(),
            group.clone(),
            topic.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = Kafka::new(&bootstrap)
                .config()
                .set("group.id", &group)
                .create()
                .unwrap();
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(&topic, 0, Offset::Offset(5))
                .unwrap();
            consumer.commit(&list, CommitMode::Sync).unwrap();
        })
        .await
        .unwrap();
    }
    let mut sink = manifest(&services, db, &name, &topic, &table);
    sink.spec.source.initial_offset = InitialOffset::Latest;
    sink.spec.write.linger_ms = 50;
    let running = RunningSink::start(config(&sink)).await;
    adbsink_tests::harness::produce_ids(&services, &topic, 10..12, 2).await;
    // Partition 1's five records from before the start, and the two new ones.
    eventually(
        "partition 1 read from its start",
        Duration::from_secs(60),
        || async { (db.count(&services, &table).await == 7).then_some(()) },
    )
    .await;
    running.stop().await;
    let ids = db
        .rows(
            &services,
            &format!("SELECT CAST(id AS text) FROM {table} ORDER BY id"),
        )
        .await;
    let mut ids: Vec<i64> = ids
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 3, 5, 7, 9, 10, 11]);
}
