//! 10,000 messages over 6 partitions reach both databases exactly, with 1 and 6 consumer tasks;
//! the group ends committed at the topic's end; status and offset records parse. An Insert
//! batch held up in the database does not hold up the next one, nor let its offsets commit first.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use adbsink_crd::{AnalyticDBSink, WriteMode};
use sqlx::Connection;

use adbsink_runtime::records::{OffsetRecord, StatusRecord, TaskState};
use adbsink_tests::harness::{
    Db, RunningSink, committed, committed_to, config, manifest, produce_ids, provisioner,
    read_topic, table_and_topic,
};
use adbsink_tests::{Kafka, Services, eventually, unique};

const N: i64 = 10_000;
const PARTITIONS: i32 = 6;

fn message(i: i64) -> String {
    let note = if i % 7 == 0 {
        "null".to_string()
    } else {
        format!("\"note {i}\"")
    };
    format!(
        r#"{{"id": {i}, "name": "name-{i}", "amount": {}.{:02}, "flag": {}, "doc": {{"k": {i}, "tags": ["a", "b"]}}, "note": {note}}}"#,
        i % 1000,
        i % 100,
        i % 2 == 0
    )
}

fn expected(db: Db, i: i64) -> Vec<Option<String>> {
    let flag = match (db, i % 2 == 0) {
        (Db::Postgres, b) => b.to_string(),
        (Db::MySql, true) => "1".into(),
        (Db::MySql, false) => "0".into(),
    };
    vec![
        Some(i.to_string()),
        Some(format!("name-{i}")),
        Some(format!("{}.{:02}", i % 1000, i % 100)),
        Some(flag),
        Some(format!(r#"{{"k": {i}, "tags": ["a", "b"]}}"#)),
        (i % 7 != 0).then(|| format!("note {i}")),
    ]
}

async fn create_table(db: Db, services: &Services, table: &str) {
    let ddl = match db {
        Db::Postgres => format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), flag boolean, doc jsonb, note text)"
        ),
        Db::MySql => format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount DECIMAL(12,2), flag BOOLEAN, doc JSON, note TEXT)"
        ),
    };
    db.execute(services, &ddl).await;
}

async fn ten_thousand_messages(db: Db, concurrency: u32) {
    let services = Services::from_env();
    let name = unique("bulk");
    let (topic, table) = (format!("{name}-in"), name.replace('-', "_"));
    create_table(db, &services, &table).await;
    let kafka = Kafka::new(&services.kafka_bootstrap);
    kafka.create_topic(&topic, PARTITIONS).await.unwrap();
    let messages: Vec<(i32, String)> = (0..N)
        .map(|i| ((i % i64::from(PARTITIONS)) as i32, message(i)))
        .collect();
    kafka
        .produce_to(
            &topic,
            messages.iter().map(|(p, m)| (Some(*p), None, m.as_bytes())),
        )
        .await
        .unwrap();

    let mut sink = manifest(&services, db, &name, &topic, &table);
    sink.spec.source.concurrency = concurrency;
    sink.spec.write.max_batch_rows = 1000;
    sink.spec.write.linger_ms = 100;
    let running = RunningSink::start(config(&sink)).await;
    let group = running.group();
    eventually(
        "all rows in the table",
        Duration::from_secs(180),
        || async { (db.count(&services, &table).await == N).then_some(()) },
    )
    .await;
    let ends = provisioner(&services).end_offsets(&topic).await.unwrap();
    eventually(
        "committed offsets at the end",
        Duration::from_secs(60),
        || async {
            let committed = committed(&services, &group, &topic).await;
            ends.iter()
                .all(|(p, end)| committed.get(p) == Some(&Some(*end)))
                .then_some(())
        },
    )
    .await;
    let config = running.stop().await;

    let query = match db {
        Db::Postgres => format!(
            "SELECT id::text, name, amount::text, flag::text, doc::text, note FROM {table} ORDER BY {table}.id"
        ),
        Db::MySql => format!(
            "SELECT CAST(id AS CHAR), name, CAST(amount AS CHAR), CAST(flag AS CHAR), CAST(doc AS CHAR), note FROM {table} ORDER BY id"
        ),
    };
    let rows = db.rows(&services, &query).await;
    assert_eq!(rows.len() as i64, N);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row, &expected(db, i as i64), "row {i}");
    }
    assert_eq!(
        ends.values().sum::<i64>(),
        N,
        "one record per message on the broker"
    );

    let topics = adbsink_crd::resolved_topics(&config.name, &config.spec.runtime);
    assert!(
        read_topic(&services, &topics.error).await.is_empty(),
        "nothing dead-lettered"
    );
    let status = provisioner(&services)
        .read_latest::<StatusRecord>(&topics.status)
        .await
        .unwrap();
    assert_eq!(
        status.len(),
        concurrency as usize,
        "one status record per task: {status:?}"
    );
    assert!(
        status
            .values()
            .all(|s| s.state == TaskState::Running && s.sink == config.name)
    );
    assert_eq!(
        status.values().map(|s| s.records_written).sum::<u64>(),
        N as u64
    );
    let offsets = provisioner(&services)
        .read_latest::<OffsetRecord>(&topics.offset)
        .await
        .unwrap();
    for (partition, end) in &ends {
        let record = &offsets[&format!("{topic}/{partition}")];
        assert_eq!(
            record.offset, *end,
            "offset record of partition {partition}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_receives_every_row_with_one_task() {
    ten_thousand_messages(Db::Postgres, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_receives_every_row_with_six_tasks() {
    ten_thousand_messages(Db::Postgres, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_receives_every_row_with_one_task() {
    ten_thousand_messages(Db::MySql, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_receives_every_row_with_six_tasks() {
    ten_thousand_messages(Db::MySql, 6).await;
}

/// After a first batch [100, 101] (a task writes one batch at a time until its first is
/// done), batch [1, 2] waits on a row lock another session holds on id 1; batch [3, 4] is
/// written meanwhile on the task's second connection, but its offsets wait for the blocked
/// batch's: a crash then re-reads from 2 instead of skipping ids 1 and 2.
async fn a_blocked_batch_holds_back_the_commits_but_not_the_writes_behind_it(mode: WriteMode) {
    let services = Services::from_env();
    let db = Db::Postgres;
    let (name, topic, table) = keyed_table(&services, "overlap").await;
    let blocker = hold_row(&services, &table, 1).await;
    produce_ids(&services, &topic, 100..102, 1).await;
    produce_ids(&services, &topic, 1..7, 1).await;
    let sink = two_row_batches(&services, &name, &topic, &table, mode);
    let running = RunningSink::start(config(&sink)).await;
    let group = running.group();
    let ids = format!("SELECT id::text FROM {table} ORDER BY 1");
    eventually(
        "ids 3 and 4 written past the blocked batch",
        Duration::from_secs(60),
        || async {
            let rows = db.rows(&services, &ids).await;
            (rows.len() >= 4).then_some(())
        },
    )
    .await;
    let id = |n: &str| vec![Some(n.to_string())];
    assert_eq!(
        db.rows(&services, &ids).await,
        [id("100"), id("101"), id("3"), id("4")],
        "the batch after the blocked one, not the blocked one nor the one after"
    );
    // The group starts at 0 (`initialOffset` is committed when it is created).
    let before = committed(&services, &group, &topic).await;
    assert!(
        matches!(before.get(&0), None | Some(None | Some(0 | 2))),
        "nothing committed past the blocked batch: {before:?}"
    );
    release(blocker).await;
    committed_to(&services, &group, &topic, 8).await;
    let config = running.stop().await;
    assert_eq!(db.count(&services, &table).await, 8);
    // The offset topic records each commit in the order it was made.
    let topics = adbsink_crd::resolved_topics(&config.name, &config.spec.runtime);
    let commits: Vec<i64> = read_topic(&services, &topics.offset)
        .await
        .iter()
        .filter_map(|r| serde_json::from_slice::<OffsetRecord>(r.value.as_deref()?).ok())
        .filter(|r| r.topic == topic && r.partition == 0)
        .map(|r| r.offset)
        .collect();
    assert!(
        commits.starts_with(&[2, 4]) && commits.is_sorted(),
        "commits in batch order: {commits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_insert_batch_holds_back_the_commits_but_not_the_writes_behind_it() {
    a_blocked_batch_holds_back_the_commits_but_not_the_writes_behind_it(WriteMode::Insert).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_upsert_batch_holds_back_the_commits_but_not_the_writes_behind_it() {
    a_blocked_batch_holds_back_the_commits_but_not_the_writes_behind_it(WriteMode::Upsert).await;
}

/// After a first batch [100, 101], batch [2, 1] waits on a row lock another session holds on
/// id 2, before it reaches id 1.
/// Batch [1, 3] updates id 1 too: written beside the first, it would commit first and the
/// first would then overwrite it with the older value. It waits instead, and id 1 ends in
/// its last message's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_batch_sharing_a_key_with_a_blocked_one_waits_for_it() {
    let services = Services::from_env();
    let (name, topic, table) = keyed_table(&services, "overlap-key").await;
    let blocker = hold_row(&services, &table, 2).await;
    let values = [
        r#"{"id": 100, "v": "first"}"#,
        r#"{"id": 101, "v": "first"}"#,
        r#"{"id": 2, "v": "first"}"#,
        r#"{"id": 1, "v": "older"}"#,
        r#"{"id": 1, "v": "newer"}"#,
        r#"{"id": 3, "v": "first"}"#,
    ];
    let (rows, refused) = past_a_blocked_batch(
        &services,
        &name,
        &topic,
        &table,
        &values,
        WriteMode::Upsert,
        blocker,
    )
    .await;
    assert_eq!(
        rows,
        ["1=newer", "2=first", "3=first", "100=first", "101=first"],
        "each key in its last message's state"
    );
    assert!(refused.is_empty(), "{refused:?}");
}

/// After a first batch [100, 101], batch [2, 1] waits on a row lock another session holds on
/// id 2, before it reaches id 1, which carries the unique value "dup". Batch [3, 4] shares no
/// id with it, but id 3 carries "dup" too: written beside the blocked batch, id 3 would take
/// the value and id 1, read first, would be refused in its place. It waits instead: id 1 is
/// stored and id 3 goes to the error topic, as writing them one after the other does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_batch_sharing_a_unique_value_with_a_blocked_one_waits_for_it() {
    let services = Services::from_env();
    let (name, topic, table) = unique_value_table(&services, "overlap-unique").await;
    let blocker = hold_row(&services, &table, 2).await;
    let values = [
        r#"{"id": 100, "v": "a"}"#,
        r#"{"id": 101, "v": "b"}"#,
        r#"{"id": 2, "v": "c"}"#,
        r#"{"id": 1, "v": "dup"}"#,
        r#"{"id": 3, "v": "dup"}"#,
        r#"{"id": 4, "v": "d"}"#,
    ];
    let (rows, refused) = past_a_blocked_batch(
        &services,
        &name,
        &topic,
        &table,
        &values,
        WriteMode::Insert,
        blocker,
    )
    .await;
    assert_eq!(
        rows,
        ["1=dup", "2=c", "4=d", "100=a", "101=b"],
        "the first of the two rows sharing a unique value stored"
    );
    assert_eq!(refused, [values[4]], "the later one refused");
}

/// Stored: id 1 with the unique value "dup". After a first batch [100, 101], batch [2, 1]
/// waits on a row lock another session holds on id 2, before it moves id 1 to "new". Batch
/// [3, 4] shares no id with it, but id 3 takes "dup", which only the blocked batch frees:
/// written beside it, id 3 would be refused. It waits instead, and every row is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_batch_taking_a_unique_value_a_blocked_one_frees_waits_for_it() {
    let services = Services::from_env();
    let db = Db::Postgres;
    let (name, topic, table) = unique_value_table(&services, "overlap-frees").await;
    db.execute(&services, &format!("INSERT INTO {table} VALUES (1, 'dup')"))
        .await;
    let blocker = hold_row(&services, &table, 2).await;
    let values = [
        r#"{"id": 100, "v": "a"}"#,
        r#"{"id": 101, "v": "b"}"#,
        r#"{"id": 2, "v": "c"}"#,
        r#"{"id": 1, "v": "new"}"#,
        r#"{"id": 3, "v": "dup"}"#,
        r#"{"id": 4, "v": "d"}"#,
    ];
    let (rows, refused) = past_a_blocked_batch(
        &services,
        &name,
        &topic,
        &table,
        &values,
        WriteMode::Upsert,
        blocker,
    )
    .await;
    assert_eq!(rows, ["1=new", "2=c", "3=dup", "4=d", "100=a", "101=b"]);
    assert!(refused.is_empty(), "{refused:?}");
}

/// Writes `values` in two-row batches while `blocker` holds up the first batch after the
/// task's first (which is written alone); releases it once that batch waits on the lock (the
/// batch after it has had its chance to go by), and stops when every offset is committed.
/// Returns the table's rows as `id=v` in id order, and the values the error topic holds.
async fn past_a_blocked_batch(
    services: &Services,
    name: &str,
    topic: &str,
    table: &str,
    values: &[&str],
    mode: WriteMode,
    blocker: sqlx::PgConnection,
) -> (Vec<String>, Vec<String>) {
    let db = Db::Postgres;
    Kafka::new(&services.kafka_bootstrap)
        .produce_to(topic, values.iter().map(|v| (Some(0), None, v.as_bytes())))
        .await
        .unwrap();
    let sink = two_row_batches(services, name, topic, table, mode);
    let running = RunningSink::start(config(&sink)).await;
    let group = running.group();
    let waiting = "SELECT pid::text FROM pg_stat_activity \
                   WHERE application_name = 'adbsink' AND wait_event_type = 'Lock'";
    eventually(
        "the first batch blocked",
        Duration::from_secs(60),
        || async { (!db.rows(services, waiting).await.is_empty()).then_some(()) },
    )
    .await;
    release(blocker).await;
    committed_to(services, &group, topic, values.len() as i64).await;
    let config = running.stop().await;
    let rows = db
        .rows(
            services,
            &format!("SELECT id::text || '=' || v FROM {table} ORDER BY {table}.id"),
        )
        .await
        .into_iter()
        .filter_map(|r| r[0].clone())
        .collect();
    let topics = adbsink_crd::resolved_topics(&config.name, &config.spec.runtime);
    let refused = read_topic(services, &topics.error)
        .await
        .iter()
        .filter_map(|r| Some(String::from_utf8_lossy(r.value.as_deref()?).into_owned()))
        .collect();
    (rows, refused)
}

/// `(id bigint PRIMARY KEY, v text UNIQUE)` with one partition.
async fn unique_value_table(services: &Services, prefix: &str) -> (String, String, String) {
    let columns = "(id bigint PRIMARY KEY, v text UNIQUE)";
    table_and_topic(services, Db::Postgres, prefix, columns, 1).await
}

async fn keyed_table(services: &Services, prefix: &str) -> (String, String, String) {
    table_and_topic(
        services,
        Db::Postgres,
        prefix,
        "(id bigint PRIMARY KEY, v text)",
        1,
    )
    .await
}

/// Another session's uncommitted insert of `id`: a write of that key waits until
/// [`release`] rolls it back.
async fn hold_row(services: &Services, table: &str, id: i64) -> sqlx::PgConnection {
    let mut blocker = sqlx::PgConnection::connect(&services.pg_url).await.unwrap();
    sqlx::raw_sql(&format!(
        "BEGIN; INSERT INTO {table} (id, v) VALUES ({id}, 'held')"
    ))
    .execute(&mut blocker)
    .await
    .unwrap();
    blocker
}

async fn release(mut blocker: sqlx::PgConnection) {
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .unwrap();
}

fn two_row_batches(
    services: &Services,
    name: &str,
    topic: &str,
    table: &str,
    mode: WriteMode,
) -> AnalyticDBSink {
    let mut sink = manifest(services, Db::Postgres, name, topic, table);
    sink.spec.source.concurrency = 1;
    sink.spec.write.max_batch_rows = 2;
    sink.spec.write.write_mode = mode;
    if mode == WriteMode::Upsert {
        sink.spec.write.primary_key = vec!["id".into()];
    }
    sink
}
