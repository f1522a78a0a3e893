//! Change streams on the real broker and both databases: a generated history of inserts,
//! updates (partial ones in Json), key changes, deletes and re-inserts, several events per key
//! inside one batch and across batches, replayed in each format (Json with tombstones,
//! DebeziumJson, CanalJson). The table must end exactly in the history's final state, at
//! concurrency 1 and 6, and again after a SIGKILL and restart in the middle. Also: tombstones
//! under `deletes: Ignore`, and every kind of malformed event on the dead-letter topic.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::time::Duration;

use adbsink_crd::{Deletes, MessageFormat, PrimaryKeySource, WriteMode};
use adbsink_runtime::records::StatusRecord;
use adbsink_tests::harness::{
    Db, Read, RunningSink, RuntimeProcess, config, manifest, provisioner, read_topic,
    table_and_topic,
};
use adbsink_tests::{Kafka, Services, eventually};
use serde_json::{Value, json};

const PARTITIONS: i64 = 6;
const KEYS: i64 = 48;
const EVENTS: usize = 1_500;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    name: String,
    qty: i64,
}

#[derive(Debug, Clone)]
enum Event {
    Insert {
        id: i64,
        row: Item,
    },
    /// `partial`: only the name changed (Json sends just the key and the name).
    Update {
        id: i64,
        before: Item,
        after: Item,
        partial: bool,
    },
    /// An update that changed the primary key, within one partition so per-key order holds.
    Move {
        from: i64,
        to: i64,
        before: Item,
        after: Item,
    },
    Delete {
        id: i64,
        before: Item,
    },
}

impl Event {
    /// Events of one key go to one partition, as a producer keyed by the primary key does.
    fn partition(&self) -> i32 {
        let id = match self {
            Self::Insert { id, .. } | Self::Update { id, .. } | Self::Delete { id, .. } => *id,
            Self::Move { to, .. } => *to,
        };
        (id % PARTITIONS) as i32
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A random history over a few keys, and the table it leaves.
fn history(seed: u64) -> (Vec<Event>, BTreeMap<i64, Item>) {
    let mut rng = Rng(seed);
    let mut state: BTreeMap<i64, Item> = BTreeMap::new();
    let mut events = Vec::with_capacity(EVENTS);
    while events.len() < EVENTS {
        let id = rng.below(KEYS as u64) as i64;
        let item = |rng: &mut Rng| Item {
            name: format!("n{}", rng.below(1000)),
            qty: rng.below(100) as i64,
        };
        let Some(before) = state.get(&id).cloned() else {
            let row = item(&mut rng);
            state.insert(id, row.clone());
            events.push(Event::Insert { id, row });
            continue;
        };
        let roll = rng.below(100);
        let free: Vec<i64> = (0..KEYS)
            .filter(|k| k % PARTITIONS == id % PARTITIONS && !state.contains_key(k))
            .collect();
        if roll < 8 && !free.is_empty() {
            let to = free[rng.below(free.len() as u64) as usize];
            let after = item(&mut rng);
            state.remove(&id);
            state.insert(to, after.clone());
            events.push(Event::Move {
                from: id,
                to,
                before,
                after,
            });
        } else if roll < 30 {
            state.remove(&id);
            events.push(Event::Delete { id, before });
        } else {
            let partial = rng.below(2) == 0;
            let mut after = item(&mut rng);
            if partial {
                after.qty = before.qty;
            }
            state.insert(id, after.clone());
            events.push(Event::Update {
                id,
                before,
                after,
                partial,
            });
        }
    }
    (events, state)
}

/// One Kafka record: partition, key, value (None: tombstone).
type Record = (i32, Option<String>, Option<String>);

fn key(id: i64) -> Option<String> {
    Some(json!({ "id": id }).to_string())
}

fn full(id: i64, item: &Item) -> Value {
    json!({"id": id, "name": item.name, "qty": item.qty})
}

/// Json with the key in the record key: tombstones delete, partial updates carry no id.
fn json_records(events: &[Event]) -> Vec<Record> {
    let mut out = Vec::new();
    for event in events {
        let p = event.partition();
        match event {
            Event::Insert { id, row } => out.push((p, key(*id), Some(full(*id, row).to_string()))),
            Event::Update {
                id,
                after,
                partial: true,
                ..
            } => out.push((p, key(*id), Some(json!({ "name": after.name }).to_string()))),
            Event::Update { id, after, .. } => {
                out.push((p, key(*id), Some(full(*id, after).to_string())))
            }
            Event::Move {
                from, to, after, ..
            } => {
                out.push((p, key(*from), None));
                out.push((p, key(*to), Some(full(*to, after).to_string())));
            }
            Event::Delete { id, .. } => out.push((p, key(*id), None)),
        }
    }
    out
}

/// Debezium events of `shop.orders`, half of them in the JSON converter's schema/payload
/// wrapper, each delete followed by its tombstone; with events of another table and schema
/// changes in between, which must change nothing.
fn debezium_records(events: &[Event]) -> Vec<Record> {
    let source = json!({"connector": "mysql", "db": "shop", "table": "orders"});
    let envelope = |op: &str, before: Value, after: Value, wrap: bool| {
        let event =
            json!({"op": op, "before": before, "after": after, "source": source, "ts_ms": 1});
        if wrap {
            json!({"schema": {"type": "struct", "name": "shop.orders.Envelope"}, "payload": event})
        } else {
            event
        }
        .to_string()
    };
    let mut out = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let p = event.partition();
        let wrap = i % 2 == 0;
        match event {
            Event::Insert { id, row } => out.push((
                p,
                key(*id),
                Some(envelope("c", Value::Null, full(*id, row), wrap)),
            )),
            Event::Update {
                id, before, after, ..
            } => out.push((
                p,
                key(*id),
                Some(envelope("u", full(*id, before), full(*id, after), wrap)),
            )),
            Event::Move {
                from,
                to,
                before,
                after,
            } => out.push((
                p,
                key(*to),
                Some(envelope("u", full(*from, before), full(*to, after), wrap)),
            )),
            Event::Delete { id, before } => {
                out.push((
                    p,
                    key(*id),
                    Some(envelope("d", full(*id, before), Value::Null, wrap)),
                ));
                out.push((p, key(*id), None));
            }
        }
        if i % 200 == 7 {
            let other = json!({"op": "c", "after": {"id": 10_000 + i, "name": "x", "qty": 1},
                "source": {"db": "shop", "table": "users"}});
            out.push((p, None, Some(other.to_string())));
            let ddl = json!({"source": {"db": "shop", "table": "orders"}, "databaseName": "shop",
                "ddl": "ALTER TABLE orders ADD COLUMN note text", "tableChanges": []});
            out.push((p, None, Some(ddl.to_string())));
        }
    }
    out
}

/// Canal flat messages of `shop.orders`: values as strings, consecutive events of one type in
/// one partition grouped up to three rows a message, key changes as an `old` holding the id;
/// with DDL and another table's rows in between.
fn canal_records(events: &[Event]) -> Vec<Record> {
    let text = |id: i64, item: &Item| json!({"id": id.to_string(), "name": item.name, "qty": item.qty.to_string()});
    // Per partition, runs of one type: (type, data rows, old rows).
    let mut open: BTreeMap<i32, (&str, Vec<Value>, Vec<Value>)> = BTreeMap::new();
    let mut out = Vec::new();
    let flush =
        |out: &mut Vec<Record>, p: i32, (kind, data, old): (&str, Vec<Value>, Vec<Value>)| {
            let mut message = json!({"type": kind, "database": "shop", "table": "orders",
            "isDdl": false, "pkNames": ["id"], "es": 1, "ts": 1, "data": data});
            if kind == "UPDATE" {
                message["old"] = json!(old);
            }
            out.push((p, None, Some(message.to_string())));
        };
    for (i, event) in events.iter().enumerate() {
        let p = event.partition();
        let (kind, data, old) = match event {
            Event::Insert { id, row } => ("INSERT", text(*id, row), Value::Null),
            Event::Update {
                id, before, after, ..
            } => {
                let mut old = json!({"name": before.name});
                if before.qty != after.qty {
                    old["qty"] = json!(before.qty.to_string());
                }
                ("UPDATE", text(*id, after), old)
            }
            Event::Move {
                from,
                to,
                before,
                after,
            } => (
                "UPDATE",
                text(*to, after),
                json!({"id": from.to_string(), "name": before.name, "qty": before.qty.to_string()}),
            ),
            Event::Delete { id, before } => ("DELETE", text(*id, before), Value::Null),
        };
        let run = open.entry(p).or_insert((kind, Vec::new(), Vec::new()));
        if run.0 != kind || run.1.len() == 3 {
            let done = std::mem::replace(run, (kind, Vec::new(), Vec::new()));
            flush(&mut out, p, done);
        }
        let run = open.get_mut(&p).unwrap();
        run.1.push(data);
        run.2.push(old);
        if i % 200 == 7 {
            out.push((
                p,
                None,
                Some(
                    json!({"type": "ALTER", "database": "shop", "table": "orders",
                "isDdl": true, "sql": "ALTER TABLE orders ADD COLUMN note text", "data": null})
                    .to_string(),
                ),
            ));
            out.push((
                p,
                None,
                Some(
                    json!({"type": "INSERT", "database": "shop", "table": "users",
                "isDdl": false, "data": [{"id": "99999", "name": "x", "qty": "1"}]})
                    .to_string(),
                ),
            ));
        }
    }
    for (p, run) in open {
        if !run.1.is_empty() {
            flush(&mut out, p, run);
        }
    }
    out
}

async fn produce(services: &Services, topic: &str, records: &[Record]) {
    Kafka::new(&services.kafka_bootstrap)
        .produce_records(
            topic,
            records
                .iter()
                .map(|(p, k, v)| (Some(*p), k.as_deref(), v.as_deref().map(str::as_bytes))),
        )
        .await
        .expect("produce");
}

async fn table_state(services: &Services, db: Db, table: &str) -> BTreeMap<i64, Item> {
    db.rows(
        services,
        &format!("SELECT CAST(id AS CHAR(20)), name, CAST(qty AS CHAR(20)) FROM {table}"),
    )
    .await
    .into_iter()
    .map(|r| {
        let number = |v: &Option<String>| v.as_deref().unwrap().trim().parse::<i64>().unwrap();
        (
            number(&r[0]),
            Item {
                name: r[1].clone().unwrap_or_default(),
                qty: number(&r[2]),
            },
        )
    })
    .collect()
}

async fn reaches(
    services: &Services,
    db: Db,
    table: &str,
    expected: &BTreeMap<i64, Item>,
    what: &str,
) {
    let mut last = BTreeMap::new();
    let reached = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            last = table_state(services, db, table).await;
            if &last == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    if reached.is_err() {
        let differ: Vec<_> = expected
            .keys()
            .chain(last.keys())
            .filter(|k| expected.get(k) != last.get(k))
            .map(|k| (k, expected.get(k), last.get(k)))
            .take(10)
            .collect();
        panic!(
            "{what}: the table never reached the history's final state; (id, expected, got): {differ:?}"
        );
    }
}

async fn replay(db: Db, format: MessageFormat, seed: u64) {
    let services = Services::from_env();
    let varchar = if db == Db::Postgres {
        "text"
    } else {
        "VARCHAR(40)"
    };
    let (name, topic, table) = table_and_topic(
        &services,
        db,
        "changes",
        &format!("(id bigint PRIMARY KEY, name {varchar} NOT NULL, qty bigint NOT NULL DEFAULT 0)"),
        PARTITIONS as i32,
    )
    .await;
    let (events, expected) = history(seed);
    let records = match format {
        MessageFormat::Json => json_records(&events),
        MessageFormat::DebeziumJson => debezium_records(&events),
        MessageFormat::CanalJson => canal_records(&events),
    };
    produce(&services, &topic, &records).await;
    let sink = |suffix: &str, concurrency: u32, topic: &str| {
        let mut sink = manifest(&services, db, &format!("{name}-{suffix}"), topic, &table);
        let write = &mut sink.spec.write;
        write.format = format;
        write.write_mode = WriteMode::Upsert;
        write.primary_key = vec!["id".into()];
        match format {
            MessageFormat::Json => {
                write.primary_key_source = PrimaryKeySource::Key;
                write.deletes = Some(Deletes::Apply);
            }
            MessageFormat::DebeziumJson => write.source_table = Some("shop.orders".into()),
            MessageFormat::CanalJson => write.source_table = Some("orders".into()),
        }
        // Small batches: many boundaries, each key's events spread over several of them.
        write.max_batch_rows = 40;
        write.linger_ms = 20;
        sink.spec.source.concurrency = concurrency;
        sink
    };

    let running = RunningSink::start(config(&sink("c1", 1, &topic))).await;
    reaches(&services, db, &table, &expected, "concurrency 1").await;
    running.stop().await;

    // Again from an empty table, at concurrency 6, killed mid-stream: from a second topic that
    // holds two thirds of the history until the kill, so the kill lands before the end however
    // fast the sink writes; the rest is produced before the restart.
    db.execute(&services, &format!("DELETE FROM {table}")).await;
    let again = format!("{topic}-again");
    Kafka::new(&services.kafka_bootstrap)
        .create_topic(&again, PARTITIONS as i32)
        .await
        .expect("topic");
    let (before_kill, after_kill) = records.split_at(records.len() * 2 / 3);
    produce(&services, &again, before_kill).await;
    let mut sink = sink("c6", 6, &again);
    sink.spec.write.max_batch_rows = 5;
    adbsink_runtime::standalone::provision(&config(&sink))
        .await
        .expect("provision");
    let first = RuntimeProcess::start(&sink);
    let changes = events.len() as u64;
    let written = eventually(
        "a third of the history written",
        Duration::from_secs(60),
        || async {
            let written = first.metric("adbsink_records_written_total").await;
            (written >= changes / 3).then_some(written)
        },
    )
    .await;
    first.kill9();
    assert!(
        written < changes,
        "killed in the middle ({written} of {changes} changes)"
    );
    produce(&services, &again, after_kill).await;
    let second = RuntimeProcess::start(&sink);
    reaches(
        &services,
        db,
        &table,
        &expected,
        "after SIGKILL and restart, concurrency 6",
    )
    .await;
    second.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_json_tombstones_replay_a_history_exactly() {
    replay(Db::Postgres, MessageFormat::Json, 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_json_tombstones_replay_a_history_exactly() {
    replay(Db::MySql, MessageFormat::Json, 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_debezium_replays_a_history_exactly() {
    replay(Db::Postgres, MessageFormat::DebeziumJson, 13).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_debezium_replays_a_history_exactly() {
    replay(Db::MySql, MessageFormat::DebeziumJson, 14).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_canal_replays_a_history_exactly() {
    replay(Db::Postgres, MessageFormat::CanalJson, 15).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_canal_replays_a_history_exactly() {
    replay(Db::MySql, MessageFormat::CanalJson, 16).await;
}

/// Exactly-once keeps deletes in the offsets' transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_exactly_once_applies_deletes() {
    let services = Services::from_env();
    let (name, topic, table) = table_and_topic(
        &services,
        Db::Postgres,
        "changes-eos",
        "(id bigint PRIMARY KEY, name text NOT NULL, qty bigint NOT NULL DEFAULT 0)",
        PARTITIONS as i32,
    )
    .await;
    let (events, expected) = history(17);
    produce(&services, &topic, &debezium_records(&events)).await;
    let mut sink = manifest(&services, Db::Postgres, &name, &topic, &table);
    sink.spec.write.format = MessageFormat::DebeziumJson;
    sink.spec.write.write_mode = WriteMode::Upsert;
    sink.spec.write.primary_key = vec!["id".into()];
    sink.spec.write.source_table = Some("orders".into());
    sink.spec.write.exactly_once = true;
    sink.spec.write.max_batch_rows = 40;
    sink.spec.write.linger_ms = 20;
    sink.spec.source.concurrency = 3;
    let running = RunningSink::start(config(&sink)).await;
    reaches(&services, Db::Postgres, &table, &expected, "exactly once").await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_tombstones_under_ignore_are_skipped_and_counted() {
    let services = Services::from_env();
    let (name, topic, table) = table_and_topic(
        &services,
        Db::Postgres,
        "tombstone-ignore",
        "(id bigint PRIMARY KEY, name text, qty bigint)",
        1,
    )
    .await;
    let records: Vec<Record> = vec![
        (
            0,
            key(1),
            Some(r#"{"id": 1, "name": "a", "qty": 1}"#.into()),
        ),
        (0, key(1), None),
        (
            0,
            key(2),
            Some(r#"{"id": 2, "name": "b", "qty": 2}"#.into()),
        ),
    ];
    produce(&services, &topic, &records).await;
    let mut sink = manifest(&services, Db::Postgres, &name, &topic, &table);
    sink.spec.write.write_mode = WriteMode::Upsert;
    sink.spec.write.primary_key = vec!["id".into()];
    sink.spec.write.deletes = Some(Deletes::Ignore);
    sink.spec.write.linger_ms = 20;
    adbsink_runtime::standalone::provision(&config(&sink))
        .await
        .expect("provision");
    let process = RuntimeProcess::start(&sink);
    let skipped = eventually("the tombstone counted", Duration::from_secs(60), || async {
        let skipped = process.metric("adbsink_records_skipped_total").await;
        let written = process.metric("adbsink_records_written_total").await;
        (written == 2 && skipped > 0).then_some(skipped)
    })
    .await;
    assert_eq!(skipped, 1);
    let text = adbsink_tests::http_get(process.port, "/metrics")
        .await
        .unwrap();
    assert!(text.contains("reason=\"tombstone\""), "{text}");
    process.terminate().await;
    let ids: Vec<i64> = table_state(&services, Db::Postgres, &table)
        .await
        .into_keys()
        .collect();
    assert_eq!(ids, vec![1, 2], "the tombstone deleted nothing");
    let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
    assert!(read_topic(&services, &topics.dead_letter).await.is_empty());
    // The task's status record, which the operator folds into the CR, counts it too.
    let skipped_in_status = eventually(
        "the skip in the task status",
        Duration::from_secs(30),
        || async {
            let status = provisioner(&services)
                .read_latest::<StatusRecord>(&topics.status)
                .await
                .ok()?;
            let skipped: u64 = status.values().map(|t| t.records_skipped).sum();
            (skipped > 0).then_some(skipped)
        },
    )
    .await;
    assert_eq!(skipped_in_status, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_malformed_change_event_reaches_the_dead_letter_topic_with_its_reason() {
    let services = Services::from_env();
    for (format, corpus) in [
        (
            MessageFormat::DebeziumJson,
            vec![
                (r#"{"before": null, "after": {"id": 1}}"#, "no \"op\" field"),
                (r#"{"op": "x", "after": {"id": 1}}"#, "unknown op \"x\""),
                (
                    r#"{"op": "c", "after": null}"#,
                    "without an \"after\" image",
                ),
                (
                    r#"{"op": "u", "after": {"name": "a"}}"#,
                    "no primary key column \"id\"",
                ),
                (
                    r#"{"op": "d", "before": null}"#,
                    "a delete without a \"before\" image",
                ),
                (
                    r#"{"op": "c", "after": "text"}"#,
                    "is a JSON string, not an object",
                ),
            ],
        ),
        (
            MessageFormat::CanalJson,
            vec![
                (
                    r#"{"table": "orders", "data": [{"id": "1"}]}"#,
                    "no \"type\" field",
                ),
                (
                    r#"{"type": "UPSERT", "data": [{"id": "1"}]}"#,
                    "unknown type \"UPSERT\"",
                ),
                (
                    r#"{"type": "INSERT", "data": {"id": "1"}}"#,
                    "\"data\" is not an array",
                ),
                (
                    r#"{"type": "DELETE", "data": [{"name": "a"}]}"#,
                    "no primary key column \"id\"",
                ),
                (r#"{"type": "INSERT"}"#, "a INSERT without \"data\""),
            ],
        ),
    ] {
        let (name, topic, table) = table_and_topic(
            &services,
            Db::MySql,
            "malformed-changes",
            "(id bigint PRIMARY KEY, name VARCHAR(40), qty bigint NOT NULL DEFAULT 0)",
            1,
        )
        .await;
        let good = match format {
            MessageFormat::DebeziumJson => r#"{"op": "c", "after": {"id": 7, "name": "ok"}}"#,
            _ => r#"{"type": "INSERT", "data": [{"id": "7", "name": "ok"}]}"#,
        };
        let mut records: Vec<Record> = corpus
            .iter()
            .map(|(value, _)| (0, None, Some(value.to_string())))
            .collect();
        records.push((0, None, Some(good.to_string())));
        produce(&services, &topic, &records).await;
        let mut sink = manifest(&services, Db::MySql, &name, &topic, &table);
        sink.spec.write.format = format;
        sink.spec.write.write_mode = WriteMode::Upsert;
        sink.spec.write.primary_key = vec!["id".into()];
        sink.spec.write.linger_ms = 20;
        let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
        let running = RunningSink::start(config(&sink)).await;
        let failed: Vec<Read> =
            eventually("every malformed event", Duration::from_secs(60), || async {
                let failed = read_topic(&services, &topics.dead_letter).await;
                (failed.len() >= corpus.len()).then_some(failed)
            })
            .await;
        running.stop().await;
        assert_eq!(failed.len(), corpus.len(), "{format:?}");
        for record in &failed {
            let offset: usize = record.headers["__connect.errors.offset"].parse().unwrap();
            let (_, reason) = corpus[offset];
            assert_eq!(
                record.headers["__connect.errors.stage"], "VALUE_CONVERTER",
                "{format:?} {offset}"
            );
            assert_eq!(
                record.headers["__connect.errors.exception.class.name"], "MalformedChangeEvent",
                "{format:?} {offset}"
            );
            let message = &record.headers["__connect.errors.exception.message"];
            assert!(message.contains(reason), "{format:?} {offset}: {message}");
        }
        let ids: Vec<i64> = table_state(&services, Db::MySql, &table)
            .await
            .into_keys()
            .collect();
        assert_eq!(ids, vec![7], "{format:?}: only the good event is applied");
    }
}

/// A two-column key: deletes, a key change and a re-insert, in one batch and across two, on
/// both databases (`DELETE … USING (VALUES …)` on PostgreSQL, `(k1, k2) IN (…)` on MySQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_keys_delete_move_and_reinsert_on_both_databases() {
    let services = Services::from_env();
    for db in [Db::Postgres, Db::MySql] {
        let varchar = if db == Db::Postgres {
            "text"
        } else {
            "VARCHAR(40)"
        };
        let (name, topic, table) = table_and_topic(
            &services,
            db,
            "changes-composite",
            &format!("(tenant {varchar} NOT NULL, id bigint NOT NULL, name {varchar}, PRIMARY KEY (tenant, id))"),
            1,
        )
        .await;
        let event = |op: &str, before: Value, after: Value| {
            Some(json!({"op": op, "before": before, "after": after}).to_string())
        };
        let row =
            |tenant: &str, id: i64, name: &str| json!({"tenant": tenant, "id": id, "name": name});
        let first: Vec<Record> = vec![
            (0, None, event("c", Value::Null, row("a", 1, "one"))),
            (0, None, event("c", Value::Null, row("a", 2, "two"))),
            (0, None, event("c", Value::Null, row("b", 1, "b-one"))),
            (0, None, event("d", row("a", 1, "one"), Value::Null)),
            (
                0,
                None,
                event("u", row("a", 2, "two"), row("b", 2, "moved")),
            ),
            (0, None, event("c", Value::Null, row("a", 1, "again"))),
        ];
        produce(&services, &topic, &first).await;
        let mut sink = manifest(&services, db, &name, &topic, &table);
        sink.spec.write.format = MessageFormat::DebeziumJson;
        sink.spec.write.write_mode = WriteMode::Upsert;
        sink.spec.write.primary_key = vec!["tenant".into(), "id".into()];
        sink.spec.write.linger_ms = 20;
        let running = RunningSink::start(config(&sink)).await;
        let rows = |db: Db| {
            let services = services.clone();
            let table = table.clone();
            async move {
                db.rows(
                    &services,
                    &format!(
                        "SELECT tenant, CAST(id AS CHAR(20)), name FROM {table} ORDER BY tenant, id"
                    ),
                )
                .await
                .into_iter()
                .map(|r| {
                    format!(
                        "{}/{}={}",
                        r[0].clone().unwrap_or_default(),
                        r[1].clone().unwrap_or_default().trim(),
                        r[2].clone().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
            }
        };
        let want = vec![
            "a/1=again".to_string(),
            "b/1=b-one".into(),
            "b/2=moved".into(),
        ];
        eventually(
            "the first batch applied",
            Duration::from_secs(60),
            || async { (rows(db).await == want).then_some(()) },
        )
        .await;
        // A second batch: delete across tenants, and the moved row back to where it was.
        let second: Vec<Record> = vec![
            (0, None, event("d", row("b", 1, "b-one"), Value::Null)),
            (
                0,
                None,
                event("u", row("b", 2, "moved"), row("a", 2, "back")),
            ),
        ];
        produce(&services, &topic, &second).await;
        let want = vec!["a/1=again".to_string(), "a/2=back".into()];
        eventually(
            "the second batch applied",
            Duration::from_secs(60),
            || async { (rows(db).await == want).then_some(()) },
        )
        .await;
        running.stop().await;
    }
}

/// Keys the database holds equal though their texts differ (a case-insensitive MariaDB
/// collation, PostgreSQL numerics): a write, then a delete of the same row spelled another
/// way, in one batch. Applied in order the delete removes the row; folded as two keys with the
/// deletes first, the row would survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_spelling_a_written_key_differently_still_removes_it() {
    let services = Services::from_env();
    for db in [Db::MySql, Db::Postgres] {
        let (key, spellings) = match db {
            Db::MySql => ("VARCHAR(40)", ["ABC", "abc", "k2", "K2"]),
            Db::Postgres => ("numeric", ["1.0", "1.00", "2", "2.0"]),
        };
        let (name, topic, table) = table_and_topic(
            &services,
            db,
            "changes-spelling",
            &format!("(id {key} PRIMARY KEY, name VARCHAR(40))"),
            1,
        )
        .await;
        let event = |op: &str, id: &str, name: &str| {
            let row = json!({"id": id, "name": name});
            let (before, after) = if op == "d" {
                (row, Value::Null)
            } else {
                (Value::Null, row)
            };
            Some(json!({"op": op, "before": before, "after": after}).to_string())
        };
        let [first, first_again, second, second_again] = spellings;
        let history: Vec<Record> = vec![
            (0, None, event("c", first, "one")),
            (0, None, event("d", first_again, "one")),
            (0, None, event("c", second, "two")),
            (0, None, event("d", second_again, "two")),
            (0, None, event("c", second_again, "back")),
        ];
        upsert_debezium_by_id(&services, db, (&name, &topic, &table), &history).await;
        let rows: Vec<String> = db
            .rows(
                &services,
                &format!("SELECT CAST(id AS CHAR(20)), name FROM {table} ORDER BY 1"),
            )
            .await
            .into_iter()
            .map(|r| {
                format!(
                    "{}={}",
                    r[0].as_deref().unwrap_or_default().trim(),
                    r[1].as_deref().unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(rows, [format!("{second_again}=back")], "{db:?}");

        // Two writes of one row spelled two ways, setting different columns: written in
        // groups by column set, the later write must still land last.
        let (name, topic, table) = table_and_topic(
            &services,
            db,
            "changes-spelling-columns",
            &format!("(id {key} PRIMARY KEY, x int, y int)"),
            1,
        )
        .await;
        let write =
            |after: Value| Some(json!({"op": "c", "before": null, "after": after}).to_string());
        let history: Vec<Record> = vec![
            (0, None, write(json!({"id": first, "x": 1, "y": 1}))),
            (0, None, write(json!({"id": first_again, "x": 2}))),
        ];
        upsert_debezium_by_id(&services, db, (&name, &topic, &table), &history).await;
        let rows = db
            .rows(
                &services,
                &format!("SELECT CAST(x AS CHAR(4)), CAST(y AS CHAR(4)) FROM {table}"),
            )
            .await;
        let value = |v: &Option<String>| v.as_deref().unwrap_or_default().trim().to_string();
        let rows: Vec<(String, String)> =
            rows.iter().map(|r| (value(&r[0]), value(&r[1]))).collect();
        assert_eq!(
            rows,
            [("2".to_string(), "1".to_string())],
            "{db:?}: the later write last"
        );
    }
}

/// Writes `history` (Debezium events, Upsert by `id`) through a sink until every offset is
/// committed.
async fn upsert_debezium_by_id(
    services: &Services,
    db: Db,
    (name, topic, table): (&str, &str, &str),
    history: &[Record],
) {
    produce(services, topic, history).await;
    let mut sink = manifest(services, db, name, topic, table);
    sink.spec.write.format = MessageFormat::DebeziumJson;
    sink.spec.write.write_mode = WriteMode::Upsert;
    sink.spec.write.primary_key = vec!["id".into()];
    let running = RunningSink::start(config(&sink)).await;
    let group = running.group();
    adbsink_tests::harness::committed_to(services, &group, topic, history.len() as i64).await;
    running.stop().await;
}
