//! End-to-end throughput against the databases' own bulk-load ceilings, on the local services,
//! with the databases durable as production's are.
//!
//! `cargo run --release -p adbsink-tests --bin bench -- [--messages N] [--json FILE] [--quick]
//! [--only TEXT] [--workload W[,W…]] [--unsafe-fast-db] [--kafka-property K=V]…`
//!
//! Three bulk workloads, each N JSON messages in a 12-partition topic of its own: `uniform` (10
//! columns, about 280 bytes, every message the same keys), `sparse` (a 40-column table, each
//! message carrying one of 16 different subsets of about two thirds of the columns, in no
//! order, as real topics do), `wide` (the 10 columns with a long description: about 2 KB a
//! message). Each is measured in one run against its own ceilings: a plain consumer (broker),
//! COPY FROM STDIN (PostgreSQL) and LOAD DATA LOCAL INFILE (MariaDB) of the same rows (missing
//! keys as NULL), and, for `uniform`, one INSERT + commit per message (the baseline, on a
//! sample). Then adbsink standalone end to end for both databases, Insert and Upsert:
//! concurrency 1, 6 and 12 for `uniform`, 6 for the others. Reported per run: rows/s end to
//! end (process start to the last row), steady rows/s (first row to last), seconds to the
//! first row, peak RSS and CPU seconds (user + system) of the runtime per million rows, the
//! whole machine's busy CPU seconds per million rows (every process: databases and broker too)
//! and how busy that kept the cores, and the ratios to the ceilings.
//!
//! Three change-stream workloads, N events each (20% inserts, 70% updates, 10% deletes, each
//! to its key's partition) over the uniform rows: `json-cdc` (flat JSON, tombstones delete),
//! `debezium` (before and after images), `canal` (flat messages, values as strings). Upsert at
//! concurrency 6 on both databases, compared with the uniform workload's Upsert of the same run
//! (`--workload uniform,debezium` runs both); the table must end with exactly the live keys.
//!
//! Before each database measurement both databases are settled (a PostgreSQL `CHECKPOINT`,
//! InnoDB's dirty pages flushed), so no measurement pays for the background writes of the
//! one before it.
//!
//! The databases are made durable for the run (PostgreSQL `fsync`, `synchronous_commit` and
//! `full_page_writes` on; MariaDB `innodb_flush_log_at_trx_commit=1`) and put back as they were
//! afterwards, also after a panic or Ctrl-C; `--unsafe-fast-db` leaves them as they are (the dev services run them
//! with durability off, for fast tests). `--quick` runs three configurations on a small N and
//! checks row counts exactly: the CI smoke test. `--only` runs the adbsink configurations whose
//! name contains TEXT (e.g. `"MariaDB Upsert"`, `"concurrency 6"`); `--kafka-property` passes a
//! librdkafka setting to the runtime and `--write KEY=VALUE` a `spec.write` field (e.g.
//! `maxBatchRows=20000`), for tuning. `--repeat N` runs every ceiling and configuration N
//! times, in interleaved rounds, and reports the medians (with the spread): single samples of
//! the durable databases vary by a third from run to run. Timings are reported, never asserted.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark tool: a panic is the report

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use adbsink_tests::harness::{Db, manifest};
use adbsink_tests::{Kafka, Services, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use sqlx::Connection;

const PARTITIONS: i32 = 12;
const USAGE: &str = "usage: bench [--messages N] [--json FILE] [--quick] [--only TEXT] [--repeat N] \
                     [--workload W[,W…]] [--unsafe-fast-db] [--write KEY=VALUE]... \
                     [--kafka-property KEY=VALUE]... (details: tests/src/bin/bench.rs)";
const BASELINE_SAMPLE: usize = 20_000;

struct Args {
    messages: usize,
    json: Option<PathBuf>,
    quick: bool,
    only: Option<String>,
    workload: Option<String>,
    unsafe_fast_db: bool,
    kafka_properties: Vec<String>,
    /// spec.write overrides, for tuning: `maxBatchRows=20000`.
    write: Vec<(String, serde_json::Value)>,
    /// Rounds of every ceiling and configuration, interleaved; medians are reported.
    repeat: usize,
}

fn args() -> Args {
    let mut args = Args {
        messages: 1_000_000,
        json: None,
        quick: false,
        only: None,
        workload: None,
        unsafe_fast_db: false,
        kafka_properties: Vec::new(),
        write: Vec::new(),
        repeat: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--messages" => {
                args.messages = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--messages N")
            }
            "--json" => args.json = it.next().map(PathBuf::from),
            "--quick" => args.quick = true,
            "--repeat" => {
                args.repeat = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .expect("--repeat N (1 or more)")
            }
            "--only" => args.only = Some(it.next().expect("--only TEXT")),
            "--workload" => args.workload = Some(it.next().expect("--workload NAME")),
            "--unsafe-fast-db" => args.unsafe_fast_db = true,
            "--write" => {
                let pair = it.next().expect("--write KEY=VALUE");
                let (key, value) = pair.split_once('=').expect("--write KEY=VALUE");
                let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
                args.write.push((key.to_string(), value));
            }
            "--kafka-property" => args
                .kafka_properties
                .push(it.next().expect("--kafka-property KEY=VALUE")),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                eprintln!("bench: unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    for w in args.workload.iter().flat_map(|w| w.split(',')) {
        if !WORKLOADS.contains(&w) {
            eprintln!("bench: unknown workload {w:?}: one of {WORKLOADS:?}\n{USAGE}");
            std::process::exit(2);
        }
    }
    args
}

const WORKLOADS: [&str; 6] = ["uniform", "sparse", "wide", "json-cdc", "debezium", "canal"];

/// The change-stream workloads and the format their sinks read.
fn change_format(workload: &str) -> Option<adbsink_crd::MessageFormat> {
    use adbsink_crd::MessageFormat::*;
    match workload {
        "json-cdc" => Some(Json),
        "debezium" => Some(DebeziumJson),
        "canal" => Some(CanalJson),
        _ => None,
    }
}

/// One message's column values in the uniform and wide workloads.
struct Record {
    id: usize,
    qty: usize,
    price: String,
    ratio: String,
    code: String,
    title: String,
    description: String,
    created_at: String,
    active: bool,
    note: Option<String>,
}

/// Words the wide workload's descriptions are made of, varied per message.
const FILLER: &str = "adbsink streams Kafka topics into analytic databases on Kubernetes; \
                      each JSON key is a column and each value the column's data. ";

fn record(i: usize, wide: bool) -> Record {
    let mut description =
        format!("A longer description of item {i} that pads the message to a realistic size");
    if wide {
        let start = i % FILLER.len();
        while description.len() < 1_750 {
            description.push(' ');
            description.push_str(&FILLER[start..]);
            description.push_str(&FILLER[..start]);
        }
        description.truncate(1_750);
    }
    Record {
        id: i,
        qty: i % 1000,
        price: format!("{}.{:02}", i % 100_000, i % 100),
        ratio: format!("0.{:06}", (i * 7919) % 1_000_000),
        code: format!("C-{:08}", i % 100_000_000),
        title: format!("Product number {i} in the catalogue"),
        description,
        created_at: format!(
            "2026-{:02}-{:02} {:02}:{:02}:{:02}",
            i % 12 + 1,
            i % 28 + 1,
            i % 24,
            i % 60,
            (i / 60) % 60
        ),
        active: !i.is_multiple_of(3),
        note: (!i.is_multiple_of(5)).then(|| format!("note {}", i % 97)),
    }
}

fn to_json(r: &Record) -> String {
    let note = r
        .note
        .as_ref()
        .map_or("null".to_string(), |n| format!("\"{n}\""));
    format!(
        r#"{{"id":{},"qty":{},"price":{},"ratio":{},"code":"{}","title":"{}","description":"{}","created_at":"{}","active":{},"note":{note}}}"#,
        r.id, r.qty, r.price, r.ratio, r.code, r.title, r.description, r.created_at, r.active
    )
}

fn null(db: Db) -> &'static str {
    match db {
        Db::Postgres => "",
        Db::MySql => "\\N",
    }
}

/// CSV line for COPY (empty unquoted = NULL) or LOAD DATA (`\N` = NULL).
fn to_csv(r: &Record, db: Db) -> String {
    let active = match db {
        Db::Postgres => {
            if r.active {
                "t"
            } else {
                "f"
            }
        }
        Db::MySql => {
            if r.active {
                "1"
            } else {
                "0"
            }
        }
    };
    format!(
        "{},{},{},{},{},{},{},{},{},{}\n",
        r.id,
        r.qty,
        r.price,
        r.ratio,
        r.code,
        r.title,
        r.description,
        r.created_at,
        active,
        r.note.as_deref().unwrap_or(null(db))
    )
}

fn record_ddl(db: Db, table: &str) -> String {
    match db {
        Db::Postgres => format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, qty int, price numeric(12,2), ratio double precision, \
             code varchar(16), title varchar(64), description text, created_at timestamp, active boolean, note text)"
        ),
        Db::MySql => format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, qty INT, price DECIMAL(12,2), ratio DOUBLE, \
             code VARCHAR(16), title VARCHAR(64), description TEXT, created_at DATETIME, active BOOLEAN, note TEXT)"
        ),
    }
}

/// Columns of the sparse table besides `id`: c01 … c39, a bigint, a double and a short text in
/// turn.
const SPARSE_COLUMNS: usize = 39;
/// Distinct key sets of the sparse messages.
const SPARSE_SHAPES: usize = 16;

/// Whether the sparse message `i` carries column `c` (1-based): about two thirds of the
/// columns, in one of 16 different subsets. The subset follows a hash of `i`, not `i` itself:
/// a cycle would repeat in every partition, and so would the order of key sets in a batch,
/// which real topics do not.
fn carries(i: usize, c: usize) -> bool {
    let shape = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60;
    !(c ^ (shape as usize % SPARSE_SHAPES)).is_multiple_of(3)
}

fn sparse_value(i: usize, c: usize) -> String {
    match c % 3 {
        0 => ((i * c) % 1_000_000).to_string(),
        1 => format!("{}.{:03}", i % 1000, c),
        _ => format!("v{c}-{}", i % 10_007),
    }
}

fn sparse_json(i: usize) -> String {
    let mut out = format!("{{\"id\":{i}");
    for c in (1..=SPARSE_COLUMNS).filter(|&c| carries(i, c)) {
        let value = sparse_value(i, c);
        if c % 3 == 2 {
            out.push_str(&format!(",\"c{c:02}\":\"{value}\""));
        } else {
            out.push_str(&format!(",\"c{c:02}\":{value}"));
        }
    }
    out.push('}');
    out
}

fn sparse_csv(i: usize, db: Db) -> String {
    let mut out = i.to_string();
    for c in 1..=SPARSE_COLUMNS {
        out.push(',');
        if carries(i, c) {
            out.push_str(&sparse_value(i, c));
        } else {
            out.push_str(null(db));
        }
    }
    out.push('\n');
    out
}

fn sparse_ddl(db: Db, table: &str) -> String {
    let columns: Vec<String> = (1..=SPARSE_COLUMNS)
        .map(|c| {
            let ty = match (c % 3, db) {
                (0, _) => "bigint",
                (1, Db::Postgres) => "double precision",
                (1, Db::MySql) => "DOUBLE",
                (_, _) => "varchar(32)",
            };
            format!("c{c:02} {ty}")
        })
        .collect();
    format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, {})",
        columns.join(", ")
    )
}

/// One record to produce: partition, key, value (None: a tombstone).
type Message = (i32, Option<String>, Option<String>);

/// A workload's messages and the same rows as bulk-load files.
struct Workload {
    name: &'static str,
    messages: Vec<Message>,
    /// Rows the table holds once every message is applied.
    rows: usize,
    pg_csv: String,
    my_csv: String,
    /// The uniform workload's records, for the baseline.
    records: Vec<Record>,
}

impl Workload {
    fn new(name: &'static str, n: usize) -> Self {
        if let Some(format) = change_format(name) {
            let (messages, rows) = change_stream(format, n);
            return Self {
                name,
                messages,
                rows,
                pg_csv: String::new(),
                my_csv: String::new(),
                records: Vec::new(),
            };
        }
        let round_robin = |(i, m): (usize, String)| ((i as i32) % PARTITIONS, None, Some(m));
        let (messages, pg_csv, my_csv, records) = match name {
            "sparse" => (
                (0..n)
                    .map(sparse_json)
                    .enumerate()
                    .map(round_robin)
                    .collect(),
                (0..n).map(|i| sparse_csv(i, Db::Postgres)).collect(),
                (0..n).map(|i| sparse_csv(i, Db::MySql)).collect(),
                Vec::new(),
            ),
            _ => {
                let records: Vec<Record> = (0..n).map(|i| record(i, name == "wide")).collect();
                (
                    records
                        .iter()
                        .map(to_json)
                        .enumerate()
                        .map(round_robin)
                        .collect(),
                    records.iter().map(|r| to_csv(r, Db::Postgres)).collect(),
                    records.iter().map(|r| to_csv(r, Db::MySql)).collect(),
                    if name == "uniform" {
                        records
                    } else {
                        Vec::new()
                    },
                )
            }
        };
        Self {
            name,
            messages,
            rows: n,
            pg_csv,
            my_csv,
            records,
        }
    }

    fn ddl(&self, db: Db, table: &str) -> String {
        match self.name {
            "sparse" => sparse_ddl(db, table),
            _ => record_ddl(db, table),
        }
    }

    fn average_bytes(&self) -> usize {
        let bytes = |(_, key, value): &Message| {
            key.as_ref().map_or(0, String::len) + value.as_ref().map_or(0, String::len)
        };
        self.messages.iter().map(bytes).sum::<usize>() / self.messages.len().max(1)
    }
}

/// A change history of `n` events over the uniform workload's rows: 20% inserts of new keys,
/// 70% updates and 10% deletes of live ones (inserts only while fewer than 1,000 keys live),
/// each event to the partition of its key; in `format`: Json (tombstones delete), Debezium
/// (full before and after images), Canal (one row a message, values as strings). Returns the
/// messages and the rows left.
fn change_stream(format: adbsink_crd::MessageFormat, n: usize) -> (Vec<Message>, usize) {
    use adbsink_crd::MessageFormat::*;
    let mut live: Vec<usize> = Vec::new();
    // The version of each key's current row: `record(version)` with the key's id.
    let mut current: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut next_id = 0;
    let mut messages = Vec::with_capacity(n);
    let row = |id: usize, version: usize| Record {
        id,
        ..record(version, false)
    };
    for i in 0..n {
        let roll = (i.wrapping_mul(2_654_435_761) >> 7) % 100;
        let pick = i.wrapping_mul(40_503) ^ (i >> 3);
        let (op, id, before) = if live.len() < 1_000 || roll < 20 {
            let id = next_id;
            next_id += 1;
            live.push(id);
            ("c", id, None)
        } else if roll < 90 {
            let id = live[pick % live.len()];
            ("u", id, current.get(&id).copied())
        } else {
            let id = live.swap_remove(pick % live.len());
            ("d", id, current.remove(&id))
        };
        if op != "d" {
            current.insert(id, i);
        }
        let partition = (id as i32) % PARTITIONS;
        let key = Some(format!(r#"{{"id":{id}}}"#));
        let after = (op != "d").then(|| row(id, i));
        let before = before.map(|v| row(id, v));
        let value = match format {
            Json => after.as_ref().map(to_json),
            DebeziumJson => Some(format!(
                r#"{{"before":{},"after":{},"source":{{"db":"bench","table":"orders"}},"op":"{op}","ts_ms":{i}}}"#,
                before.as_ref().map_or("null".into(), to_json),
                after.as_ref().map_or("null".into(), to_json),
            )),
            CanalJson => {
                let (kind, data, old) = match (op, &after, &before) {
                    ("c", Some(a), _) => ("INSERT", a, "null".to_string()),
                    ("u", Some(a), Some(b)) => (
                        "UPDATE",
                        a,
                        format!(r#"[{{"qty":"{}","title":"{}"}}]"#, b.qty, b.title),
                    ),
                    (_, _, Some(b)) => ("DELETE", b, "null".to_string()),
                    _ => unreachable!("every update and delete has a before image"),
                };
                Some(format!(
                    r#"{{"data":[{}],"database":"bench","table":"orders","isDdl":false,"old":{old},"pkNames":["id"],"type":"{kind}","es":{i},"ts":{i}}}"#,
                    to_canal(data)
                ))
            }
        };
        messages.push((partition, key, value));
    }
    (messages, live.len())
}

/// A row as Canal's flat message carries it: every value a string, NULL as null.
fn to_canal(r: &Record) -> String {
    let note = r
        .note
        .as_ref()
        .map_or("null".to_string(), |n| format!("\"{n}\""));
    format!(
        r#"{{"id":"{}","qty":"{}","price":"{}","ratio":"{}","code":"{}","title":"{}","description":"{}","created_at":"{}","active":"{}","note":{note}}}"#,
        r.id,
        r.qty,
        r.price,
        r.ratio,
        r.code,
        r.title,
        r.description,
        r.created_at,
        u8::from(r.active)
    )
}

/// How often the runtime's written-rows counter is read.
const POLL: Duration = Duration::from_millis(20);
/// A steady rate over fewer than ten polls is mostly polling error.
const MIN_STEADY: Duration = POLL.saturating_mul(10);

struct Row {
    workload: &'static str,
    name: String,
    rows: usize,
    seconds: f64,
    peak_rss_mib: Option<f64>,
    /// adbsink: seconds from start to the first committed row (start-up and the group join).
    first_row: Option<f64>,
    /// adbsink: user + system CPU seconds of the runtime process.
    cpu_seconds: Option<f64>,
    /// CPU seconds the whole machine was busy during the measurement (every process: the
    /// database, the broker, the runtime), against which the cores bound any rate.
    machine_cpu: Option<f64>,
    /// A summary's median steady rate, over its samples' own.
    steady: Option<f64>,
    /// A summary of several samples: the lowest and highest rows/s, and how many.
    spread: Option<(f64, f64, usize)>,
}

impl Row {
    fn measured(workload: &'static str, name: String, rows: usize, seconds: f64) -> Self {
        Self {
            workload,
            name,
            rows,
            seconds,
            peak_rss_mib: None,
            first_row: None,
            cpu_seconds: None,
            machine_cpu: None,
            steady: None,
            spread: None,
        }
    }

    fn rate(&self) -> f64 {
        self.rows as f64 / self.seconds
    }

    /// adbsink: rows/s once rows flow, without start-up and the group join. None when the
    /// first and last rows are too close to time apart with the counter's polling (a small N).
    fn steady_rate(&self) -> Option<f64> {
        if self.steady.is_some() {
            return self.steady;
        }
        let flowing = self.seconds - self.first_row?;
        (flowing >= MIN_STEADY.as_secs_f64()).then(|| self.rows as f64 / flowing)
    }

    fn cpu_per_million(&self) -> Option<f64> {
        self.cpu_seconds.map(|s| s * 1e6 / self.rows as f64)
    }

    fn machine_cpu_per_million(&self) -> Option<f64> {
        self.machine_cpu.map(|s| s * 1e6 / self.rows as f64)
    }
}

/// The adbsink configurations of a workload: (database, mode, concurrency).
fn configs(workload: &str, quick: bool) -> Vec<(Db, &'static str, u32)> {
    if change_format(workload).is_some() {
        // Compared with the uniform workload's Upsert at concurrency 6; the smoke checks one.
        return if quick {
            vec![(Db::Postgres, "Upsert", 6)]
        } else {
            vec![(Db::Postgres, "Upsert", 6), (Db::MySql, "Upsert", 6)]
        };
    }
    let concurrencies: &[u32] = match (quick, workload) {
        (true, _) => &[6],
        (false, "uniform") => &[1, 6, 12],
        (false, _) => &[6],
    };
    let mut all = Vec::new();
    for db in [Db::Postgres, Db::MySql] {
        for mode in ["Insert", "Upsert"] {
            for &concurrency in concurrencies {
                all.push((db, mode, concurrency));
            }
        }
    }
    if quick {
        // The smoke: one per database on the uniform topic, the grouping by key set on the
        // sparse one.
        all.retain(|(db, mode, _)| match workload {
            "uniform" => matches!(
                (db, *mode),
                (Db::Postgres, "Insert") | (Db::MySql, "Upsert")
            ),
            _ => matches!((db, *mode), (Db::Postgres, "Upsert")),
        });
    }
    all
}

#[tokio::main]
async fn main() {
    let args = args();
    let services = Services::from_env();
    let durable = (!args.unsafe_fast_db).then_some(Durability::on(&services).await);
    let settings = database_settings(&services).await;
    eprintln!("bench: databases: {}", settings.join(", "));
    let busy = busy_neighbours();
    if !busy.is_empty() {
        eprintln!(
            "bench: warning: {} running beside the benchmark and take CPU from it (a Kubernetes \
             control plane idles at about a quarter of a core): `bash ../shared/k8s/control-plane.sh \
             down` first for figures worth comparing",
            busy.join(", ")
        );
    }
    // Whatever happens to the measurements (a panic, Ctrl-C), the databases go back to how
    // they were.
    let measured =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(measure(args, settings)));
    let outcome = tokio::select! {
        outcome = measured => Some(outcome),
        _ = tokio::signal::ctrl_c() => None,
    };
    if let Some(durable) = &durable {
        durable.restore(&services).await;
    }
    match outcome {
        Some(Ok(())) => {}
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        None => {
            eprintln!("bench: interrupted; the databases' settings are restored");
            std::process::exit(130);
        }
    }
}

async fn measure(args: Args, settings: Vec<String>) {
    let services = Services::from_env();
    let n = args.messages;
    let kafka = Kafka::new(&services.kafka_bootstrap);
    let workloads: Vec<&'static str> = match (&args.workload, args.quick) {
        (Some(w), _) => WORKLOADS
            .iter()
            .copied()
            .filter(|x| w.split(',').any(|w| w == *x))
            .collect(),
        (None, true) => vec!["uniform", "sparse", "debezium"],
        (None, false) => WORKLOADS.to_vec(),
    };
    let mut results = Vec::new();
    for name in workloads {
        let workload = Workload::new(name, n);
        eprintln!(
            "bench: workload {name}: {n} messages, {} bytes on average, {PARTITIONS} partitions",
            workload.average_bytes()
        );
        let topic = unique(&format!("bench-{name}"));
        kafka.create_topic(&topic, PARTITIONS).await.unwrap();
        produce(&kafka, &topic, &workload.messages).await;
        if !workload.records.is_empty() {
            for db in [Db::Postgres, Db::MySql] {
                let sample = &workload.records[..n.min(BASELINE_SAMPLE)];
                results.push(baseline(&services, db, name, sample).await);
            }
        }
        // Rounds of everything, so a checkpoint or a flush of an earlier table lands in one
        // sample of each measurement at most, and the median keeps it out of the ratios.
        for round in 1..=args.repeat {
            if args.repeat > 1 {
                eprintln!("bench: [{name}] round {round} of {}", args.repeat);
            }
            measure_round(&services, &args, &workload, &topic, &mut results).await;
        }
        kafka.delete_topic(&topic).await;
    }
    report(&summarize(results), &args, &settings);
}

/// One round of a workload: its ceilings, then each adbsink configuration.
async fn measure_round(
    services: &Services,
    args: &Args,
    workload: &Workload,
    topic: &str,
    results: &mut Vec<Row>,
) {
    let name = workload.name;
    settle(services).await;
    results.push(broker_ceiling(services, workload, topic));
    // A change stream has no bulk-load equivalent: it is compared with plain Upsert.
    if change_format(name).is_none() {
        results.push(postgres_ceiling(services, workload).await);
        settle(services).await;
        results.push(mariadb_ceiling(services, workload).await);
        settle(services).await;
    }
    for (db, mode, concurrency) in configs(name, args.quick) {
        let label = adbsink_name(db, mode, concurrency);
        if args
            .only
            .as_ref()
            .is_some_and(|only| !label.contains(only.as_str()))
        {
            continue;
        }
        let run = Run {
            db,
            mode,
            concurrency,
            kafka_properties: &args.kafka_properties,
            write: &args.write,
        };
        results.push(adbsink(services, workload, topic, run).await);
        settle(services).await;
    }
}

/// Waits until neither database is still writing out what an earlier measurement left: a
/// PostgreSQL checkpoint, and InnoDB's dirty pages flushed. After a million-row load both
/// write for minutes in the background (a spread checkpoint, InnoDB's page cleaner), and
/// the next measurement, on either database, would pay for it.
async fn settle(services: &Services) {
    let mut pg = sqlx::PgConnection::connect(&services.pg_url).await.unwrap();
    sqlx::query("CHECKPOINT").execute(&mut pg).await.unwrap();
    let mut my = sqlx::MySqlConnection::connect(&services.mysql_url)
        .await
        .unwrap();
    let pct = show_global(&mut my, "VARIABLES", "innodb_max_dirty_pages_pct").await;
    // Not restored if the benchmark is killed here; a server restart resets it.
    sqlx::query("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        .execute(&mut my)
        .await
        .unwrap();
    let total: u64 = show_global(&mut my, "STATUS", "Innodb_buffer_pool_pages_total")
        .await
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let dirty: u64 = show_global(&mut my, "STATUS", "Innodb_buffer_pool_pages_dirty")
            .await
            .parse()
            .unwrap();
        if dirty <= total / 1000 {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("bench: InnoDB still has {dirty} dirty pages after 120 s; going on");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sqlx::query(&format!("SET GLOBAL innodb_max_dirty_pages_pct = {pct}"))
        .execute(&mut my)
        .await
        .unwrap();
}

/// One row of MariaDB's `SHOW GLOBAL {what}` (`VARIABLES` or `STATUS`): the value of `name`.
async fn show_global(my: &mut sqlx::MySqlConnection, what: &str, name: &str) -> String {
    let (_, value): (String, String) = sqlx::query_as(&format!("SHOW GLOBAL {what} LIKE '{name}'"))
        .fetch_one(my)
        .await
        .unwrap();
    value
}

/// The median of each measurement's samples (by seconds; first row, CPU and steady rate
/// each by their own median; RSS the highest), with the spread of the rates.
fn summarize(results: Vec<Row>) -> Vec<Row> {
    fn median(mut values: Vec<f64>) -> Option<f64> {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(values[n / 2]),
            _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
        }
    }
    let mut groups: Vec<Vec<Row>> = Vec::new();
    for row in results {
        match groups
            .iter_mut()
            .find(|g| g[0].workload == row.workload && g[0].name == row.name)
        {
            Some(group) => group.push(row),
            None => groups.push(vec![row]),
        }
    }
    groups
        .into_iter()
        .map(|group| {
            let rates: Vec<f64> = group.iter().map(Row::rate).collect();
            let first = &group[0];
            Row {
                seconds: median(group.iter().map(|r| r.seconds).collect()).unwrap_or(f64::NAN),
                first_row: median(group.iter().filter_map(|r| r.first_row).collect()),
                cpu_seconds: median(group.iter().filter_map(|r| r.cpu_seconds).collect()),
                machine_cpu: median(group.iter().filter_map(|r| r.machine_cpu).collect()),
                peak_rss_mib: group.iter().filter_map(|r| r.peak_rss_mib).reduce(f64::max),
                steady: median(group.iter().filter_map(Row::steady_rate).collect()),
                spread: (group.len() > 1).then(|| {
                    (
                        rates.iter().copied().fold(f64::INFINITY, f64::min),
                        rates.iter().copied().fold(0.0, f64::max),
                        group.len(),
                    )
                }),
                ..Row::measured(first.workload, first.name.clone(), first.rows, 0.0)
            }
        })
        .collect()
}

async fn produce(kafka: &Kafka, topic: &str, messages: &[Message]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let started = Instant::now();
    let producer: FutureProducer = kafka
        .config()
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    for chunk in messages.chunks(50_000) {
        let sends = chunk.iter().map(|(partition, key, value)| {
            let mut record = FutureRecord::<str, str>::to(topic).partition(*partition);
            if let Some(key) = key {
                record = record.key(key);
            }
            if let Some(value) = value {
                record = record.payload(value);
            }
            producer.send(record, Duration::from_secs(60))
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| e).expect("produce");
        }
    }
    eprintln!(
        "bench: produced in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn broker_ceiling(services: &Services, workload: &Workload, topic: &str) -> Row {
    let n = workload.messages.len();
    let consumer: BaseConsumer = Kafka::new(&services.kafka_bootstrap)
        .config()
        .set("group.id", unique("bench-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let started = Instant::now();
    let cpu = machine_cpu();
    let mut read = 0;
    while read < n {
        if let Some(m) = consumer.poll(Duration::from_secs(10)) {
            m.expect("consume");
            read += 1;
        } else {
            panic!("broker ceiling: stalled after {read} of {n}");
        }
    }
    Row {
        machine_cpu: busy_since(cpu),
        ..Row::measured(
            workload.name,
            "broker ceiling (plain consumer)".into(),
            n,
            started.elapsed().as_secs_f64(),
        )
    }
}

async fn postgres_ceiling(services: &Services, workload: &Workload) -> Row {
    let table = unique("bench_copy").replace('-', "_");
    Db::Postgres
        .execute(services, &workload.ddl(Db::Postgres, &table))
        .await;
    let mut conn = sqlx::PgConnection::connect(&services.pg_url).await.unwrap();
    let started = Instant::now();
    let cpu = machine_cpu();
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} FROM STDIN WITH (FORMAT csv)"))
        .await
        .unwrap();
    for chunk in workload.pg_csv.as_bytes().chunks(1 << 20) {
        copy.send(chunk).await.unwrap();
    }
    let rows = copy.finish().await.unwrap() as usize;
    let seconds = started.elapsed().as_secs_f64();
    let machine_cpu = busy_since(cpu);
    assert_eq!(rows, workload.messages.len());
    Db::Postgres
        .execute(services, &format!("DROP TABLE {table}"))
        .await;
    Row {
        machine_cpu,
        ..Row::measured(
            workload.name,
            "PostgreSQL ceiling (COPY FROM STDIN)".into(),
            rows,
            seconds,
        )
    }
}

async fn mariadb_ceiling(services: &Services, workload: &Workload) -> Row {
    let table = unique("bench_load").replace('-', "_");
    Db::MySql
        .execute(services, &workload.ddl(Db::MySql, &table))
        .await;
    let file = std::env::temp_dir().join(format!("{table}.csv"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    out.write_all(workload.my_csv.as_bytes()).unwrap();
    out.flush().unwrap();
    drop(out);
    let (host, port) = endpoint(&services.mysql_url);
    let sql = format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE {table} FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n'",
        file.display()
    );
    let started = Instant::now();
    let cpu = machine_cpu();
    let status = Command::new("mariadb")
        .args([
            "--local-infile=1",
            "-h",
            &host,
            "-P",
            &port,
            "-uadbsink",
            "-padbsink",
            "adbsink",
            "-e",
            &sql,
        ])
        .status()
        .expect("mariadb client");
    let seconds = started.elapsed().as_secs_f64();
    let machine_cpu = busy_since(cpu);
    assert!(status.success(), "LOAD DATA failed");
    let _ = std::fs::remove_file(&file);
    let rows = workload.messages.len();
    assert_eq!(Db::MySql.count(services, &table).await as usize, rows);
    Db::MySql
        .execute(services, &format!("DROP TABLE {table}"))
        .await;
    Row {
        machine_cpu,
        ..Row::measured(
            workload.name,
            "MariaDB ceiling (LOAD DATA LOCAL INFILE)".into(),
            rows,
            seconds,
        )
    }
}

/// The seed's design: one INSERT and one commit per message.
async fn baseline(services: &Services, db: Db, workload: &'static str, records: &[Record]) -> Row {
    let table = unique("bench_one").replace('-', "_");
    db.execute(services, &record_ddl(db, &table)).await;
    let started = Instant::now();
    match db {
        Db::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&services.pg_url).await.unwrap();
            let sql = format!(
                "INSERT INTO {table} VALUES ($1, $2, $3::numeric, $4::float8, $5, $6, $7, $8::timestamp, $9, $10)"
            );
            for r in records {
                sqlx::query(&sql)
                    .bind(r.id as i64)
                    .bind(r.qty as i32)
                    .bind(&r.price)
                    .bind(&r.ratio)
                    .bind(&r.code)
                    .bind(&r.title)
                    .bind(&r.description)
                    .bind(&r.created_at)
                    .bind(r.active)
                    .bind(&r.note)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
        Db::MySql => {
            let mut conn = sqlx::MySqlConnection::connect(&services.mysql_url)
                .await
                .unwrap();
            let sql = format!("INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            for r in records {
                sqlx::query(&sql)
                    .bind(r.id as i64)
                    .bind(r.qty as i32)
                    .bind(&r.price)
                    .bind(&r.ratio)
                    .bind(&r.code)
                    .bind(&r.title)
                    .bind(&r.description)
                    .bind(&r.created_at)
                    .bind(r.active)
                    .bind(&r.note)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    db.execute(services, &format!("DROP TABLE {table}")).await;
    Row::measured(
        workload,
        format!(
            "{} baseline (INSERT + commit per message, {} sampled)",
            name_of(db),
            records.len()
        ),
        records.len(),
        seconds,
    )
}

fn name_of(db: Db) -> &'static str {
    match db {
        Db::Postgres => "PostgreSQL",
        Db::MySql => "MariaDB",
    }
}

fn adbsink_name(db: Db, mode: &str, concurrency: u32) -> String {
    format!("adbsink {} {mode} concurrency {concurrency}", name_of(db))
}

/// One adbsink configuration.
struct Run<'a> {
    db: Db,
    mode: &'a str,
    concurrency: u32,
    kafka_properties: &'a [String],
    write: &'a [(String, serde_json::Value)],
}

/// adbsink standalone as a separate process: from a new group (committed offset zero) to all
/// N rows in the table.
async fn adbsink(services: &Services, workload: &Workload, topic: &str, run: Run<'_>) -> Row {
    let Run {
        db,
        mode,
        concurrency,
        kafka_properties,
        write,
    } = run;
    let n = workload.messages.len();
    let name = unique("bench-sink");
    let table = name.replace('-', "_");
    db.execute(services, &workload.ddl(db, &table)).await;
    let mut sink = manifest(services, db, &name, topic, &table);
    sink.spec.source.concurrency = concurrency;
    if mode == "Upsert" {
        sink.spec.write.write_mode = adbsink_crd::WriteMode::Upsert;
        sink.spec.write.primary_key = vec!["id".into()];
    }
    if let Some(format) = change_format(workload.name) {
        sink.spec.write.format = format;
        sink.spec.write.deletes = Some(adbsink_crd::Deletes::Apply);
        if format != adbsink_crd::MessageFormat::Json {
            sink.spec.write.source_table = Some("bench.orders".into());
        }
    }
    if !write.is_empty() {
        let mut spec = serde_json::to_value(&sink.spec.write).unwrap();
        for (key, value) in write {
            spec[key.as_str()] = value.clone();
        }
        sink.spec.write = serde_json::from_value(spec).expect("--write: a spec.write field");
    }
    let file = std::env::temp_dir().join(format!("{name}.yaml"));
    std::fs::write(&file, serde_yaml::to_string(&sink).unwrap()).unwrap();
    let binary = std::env::current_exe()
        .unwrap()
        .with_file_name("adbsink-runtime");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let cpu = machine_cpu();
    let child = Command::new(&binary)
        .args(["--http-addr", &format!("127.0.0.1:{port}")])
        .args(["standalone", file.to_str().unwrap()])
        // Tansu holds a new group's first JoinGroup for half the session timeout, and never
        // less than a second (like Kafka's group.initial.rebalance.delay.ms, which test
        // clusters set to 0): 2 s keeps that wait at its floor with heartbeats to spare.
        .args([
            "--kafka-property",
            "session.timeout.ms=2000",
            "--kafka-property",
            "heartbeat.interval.ms=300",
        ])
        .args(
            kafka_properties
                .iter()
                .flat_map(|p| ["--kafka-property", p.as_str()]),
        )
        .env("ADBSINK_DB_PASSWORD", "adbsink")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (build it with the same profile as bench)",
                binary.display()
            )
        });
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut peak = 0.0f64;
    let mut first_row: Option<f64> = None;
    // The runtime's own count of committed rows, read from /metrics: a COUNT(*) per poll would
    // scan the growing table and take the database's CPU from the sink being measured.
    loop {
        peak = peak.max(rss_mib(pid).unwrap_or(0.0));
        let written = written_rows(port).await.unwrap_or(0);
        if written > 0 && first_row.is_none() {
            first_row = Some(started.elapsed().as_secs_f64());
        }
        if written >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {written} of {n} rows after 30 min"
        );
        tokio::time::sleep(POLL).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let machine_cpu = busy_since(cpu);
    peak = peak.max(rss_mib(pid).unwrap_or(0.0));
    let cpu_seconds = cpu_seconds(pid);
    let count = db.count(services, &table).await as usize;
    assert_eq!(
        count, workload.rows,
        "{name}: exactly the rows the messages leave"
    );
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
        .status;
    assert!(status.success(), "{name}: exit {status}");
    let _ = std::fs::remove_file(&file);
    db.execute(services, &format!("DROP TABLE {table}")).await;
    eprintln!(
        "bench: [{}] {name}: first row after {:.2} s (start-up, group join), all rows after {seconds:.2} s",
        workload.name,
        first_row.unwrap_or(seconds)
    );
    Row {
        peak_rss_mib: Some(peak),
        first_row,
        cpu_seconds,
        machine_cpu,
        ..Row::measured(
            workload.name,
            adbsink_name(db, mode, concurrency),
            n,
            seconds,
        )
    }
}

/// `adbsink_records_written_total` from the runtime's /metrics; None until it serves.
async fn written_rows(port: u16) -> Option<usize> {
    let text = adbsink_tests::http_get(port, "/metrics").await?;
    let line = text
        .lines()
        .find(|l| l.starts_with("adbsink_records_written_total"))?;
    line.rsplit(' ').next()?.parse().ok()
}

/// Peak resident set size (VmHWM) of a process, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds all cores have been busy since boot (the first line of /proc/stat, all but idle
/// and iowait).
fn machine_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: f64 = ticks.iter().take(8).sum::<f64>() - ticks.get(3)? - ticks.get(4)?;
    Some(busy / clock_ticks())
}

/// The machine's busy CPU seconds since `start`, a [`machine_cpu`] reading.
fn busy_since(start: Option<f64>) -> Option<f64> {
    start.zip(machine_cpu()).map(|(a, b)| b - a)
}

/// Clock ticks per second, asked once: a reading at the start of a measurement would
/// otherwise spawn `getconf` inside the window it measures.
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds a process has used (utime and stime of /proc/PID/stat).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn endpoint(url: &str) -> (String, String) {
    let after_at = url.rsplit('@').next().unwrap();
    let host_port = after_at.split('/').next().unwrap();
    let (host, port) = host_port.rsplit_once(':').unwrap();
    (host.to_string(), port.to_string())
}

/// Processes of the local services that are not measured but share the CPU.
fn busy_neighbours() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        // A zombie (state Z, its parent not yet reaped) takes no CPU.
        .filter(|entry| {
            std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| Some(stat.rsplit_once(") ")?.1.starts_with('Z')))
                == Some(false)
        })
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("comm")).ok())
        .map(|comm| comm.trim().to_string())
        .filter(|comm| {
            ["kube-apiserver", "etcd", "kube-controller"]
                .iter()
                .any(|k| comm.starts_with(k))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

const PG_DURABILITY: [&str; 3] = ["fsync", "synchronous_commit", "full_page_writes"];

/// The durability settings as they were before the run, to put back after it.
struct Durability {
    postgres: Vec<(&'static str, String)>,
    innodb_flush_log_at_trx_commit: String,
}

async fn pg_setting(services: &Services, setting: &str) -> String {
    // A new session sees a reloaded configuration.
    let mut pg = sqlx::PgConnection::connect(&services.pg_url).await.unwrap();
    sqlx::query_scalar(&format!("SHOW {setting}"))
        .fetch_one(&mut pg)
        .await
        .unwrap()
}

/// Runs `sql` (ALTER SYSTEM statements), reloads, and waits until a new session sees `want`.
async fn pg_reconfigure(services: &Services, sql: &[String], want: &[(&str, String)]) {
    let mut pg = sqlx::PgConnection::connect(&services.pg_url).await.unwrap();
    for statement in sql {
        sqlx::query(statement).execute(&mut pg).await.unwrap();
    }
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut pg)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    for (setting, value) in want {
        loop {
            let now = pg_setting(services, setting).await;
            if &now == value {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL {setting} is {now}, not {value}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn innodb_flush(services: &Services, value: Option<&str>) -> String {
    let mut my = sqlx::MySqlConnection::connect(&services.mysql_url)
        .await
        .unwrap();
    if let Some(value) = value {
        sqlx::query(&format!(
            "SET GLOBAL innodb_flush_log_at_trx_commit = {value}"
        ))
        .execute(&mut my)
        .await
        .unwrap();
    }
    show_global(&mut my, "VARIABLES", "innodb_flush_log_at_trx_commit").await
}

impl Durability {
    /// Records the current settings, then makes both databases durable: fsync, synchronous
    /// commit and full page writes on (`ALTER SYSTEM`, read again until the reload took);
    /// InnoDB flushing its log at every commit. `scripts/dev-services.sh` also clears
    /// PostgreSQL's `ALTER SYSTEM` settings when it starts it, in case a run was killed.
    async fn on(services: &Services) -> Self {
        let mut postgres = Vec::new();
        for setting in PG_DURABILITY {
            postgres.push((setting, pg_setting(services, setting).await));
        }
        let before = Self {
            postgres,
            innodb_flush_log_at_trx_commit: innodb_flush(services, None).await,
        };
        let sql: Vec<String> = PG_DURABILITY
            .iter()
            .map(|s| format!("ALTER SYSTEM SET {s} = on"))
            .collect();
        let want: Vec<(&str, String)> = PG_DURABILITY.iter().map(|s| (*s, "on".into())).collect();
        pg_reconfigure(services, &sql, &want).await;
        innodb_flush(services, Some("1")).await;
        before
    }

    /// Puts back what `on` found: `ALTER SYSTEM RESET` where that gives the old value back,
    /// the old value itself otherwise.
    async fn restore(&self, services: &Services) {
        let reset: Vec<String> = self
            .postgres
            .iter()
            .map(|(s, _)| format!("ALTER SYSTEM RESET {s}"))
            .collect();
        pg_reconfigure(services, &reset, &[]).await;
        let mut set = Vec::new();
        for (setting, value) in &self.postgres {
            if &pg_setting(services, setting).await != value {
                set.push(format!("ALTER SYSTEM SET {setting} = {value}"));
            }
        }
        pg_reconfigure(services, &set, &self.postgres).await;
        innodb_flush(services, Some(&self.innodb_flush_log_at_trx_commit)).await;
    }
}

/// The settings that decide what a commit costs, as the databases report them.
async fn database_settings(services: &Services) -> Vec<String> {
    let mut out = Vec::new();
    let mut pg = sqlx::PgConnection::connect(&services.pg_url).await.unwrap();
    for setting in [
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "wal_sync_method",
        "shared_buffers",
    ] {
        let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(&mut pg)
            .await
            .unwrap();
        out.push(format!("PostgreSQL {setting}={value}"));
    }
    let mut my = sqlx::MySqlConnection::connect(&services.mysql_url)
        .await
        .unwrap();
    for variable in [
        "innodb_flush_log_at_trx_commit",
        "innodb_doublewrite",
        "innodb_flush_method",
        "innodb_buffer_pool_size",
        "log_bin",
    ] {
        let value: (String, String) =
            sqlx::query_as(&format!("SHOW GLOBAL VARIABLES LIKE '{variable}'"))
                .fetch_one(&mut my)
                .await
                .unwrap();
        out.push(format!("MariaDB {variable}={}", value.1));
    }
    out
}

fn report(results: &[Row], args: &Args, settings: &[String]) {
    let find = |workload: &str, prefix: &str| {
        results
            .iter()
            .find(|r| r.workload == workload && r.name.starts_with(prefix))
            .map(Row::rate)
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nadbsink benchmark: {} messages per workload, {cores} cores",
        args.messages
    );
    println!("databases: {}\n", settings.join(", "));
    println!(
        "{:<8} {:<62} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>6}  spread (n, min-max rows/s)",
        "workload",
        "measurement",
        "rows/s",
        "seconds",
        "vs ceil.",
        "vs base.",
        "1st row s",
        "steady/s",
        "st. vs c",
        "peak RSS",
        "CPU s/M",
        "mach. s/M",
        "busy",
    );
    let mut json_rows = Vec::new();
    let mut upsert_lines = Vec::new();
    for r in results {
        let db = if r.name.contains("PostgreSQL") {
            "PostgreSQL"
        } else if r.name.contains("MariaDB") {
            "MariaDB"
        } else {
            ""
        };
        let broker = find(r.workload, "broker ceiling").unwrap_or(f64::NAN);
        let db_ceiling = find(r.workload, &format!("{db} ceiling"));
        let baseline = find(r.workload, &format!("{db} baseline"));
        let is_adbsink = r.name.starts_with("adbsink");
        let ceiling = db_ceiling.map(|c| c.min(broker));
        let vs_ceiling = ceiling.filter(|_| is_adbsink).map(|c| r.rate() / c);
        let vs_baseline = baseline.filter(|_| is_adbsink).map(|b| r.rate() / b);
        let steady_vs_ceiling = ceiling.zip(r.steady_rate()).map(|(c, s)| s / c);
        let show = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or(String::new(), f);
        let busy = r.machine_cpu.map(|c| c / (r.seconds * cores as f64));
        println!(
            "{:<8} {:<62} {:>9.0} {:>8.2} {:>8} {:>8} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>6}  {}",
            r.workload,
            r.name,
            r.rate(),
            r.seconds,
            show(vs_ceiling, &|v| format!("{v:.2}x")),
            show(vs_baseline, &|v| format!("{v:.1}x")),
            show(r.first_row, &|v| format!("{v:.2}")),
            show(r.steady_rate(), &|v| format!("{v:.0}")),
            show(steady_vs_ceiling, &|v| format!("{v:.2}x")),
            show(r.peak_rss_mib, &|m| format!("{m:.0} MiB")),
            show(r.cpu_per_million(), &|c| format!("{c:.2}")),
            show(r.machine_cpu_per_million(), &|c| format!("{c:.2}")),
            show(busy, &|b| format!("{:.0}%", b * 100.0)),
            r.spread.map_or(String::new(), |(low, high, n)| format!(
                "{n}, {low:.0}-{high:.0}"
            )),
        );
        // A change stream against plain Upsert of the uniform rows on the same database.
        let upsert = results.iter().find(|u| {
            u.workload == "uniform" && u.name == format!("adbsink {db} Upsert concurrency 6")
        });
        let vs_upsert = upsert
            .filter(|_| is_adbsink && change_format(r.workload).is_some())
            .map(|u| {
                (
                    r.rate() / u.rate(),
                    r.steady_rate().zip(u.steady_rate()).map(|(a, b)| a / b),
                )
            });
        if let Some((total, steady)) = vs_upsert {
            upsert_lines.push(format!(
                "{:<8} {:<10} {total:.2}x end to end, {} steady",
                r.workload,
                db,
                steady.map_or("-".into(), |s| format!("{s:.2}x"))
            ));
        }
        json_rows.push(json!({
            "ratioToUpsert": vs_upsert.map(|v| v.0), "steadyRatioToUpsert": vs_upsert.and_then(|v| v.1),
            "workload": r.workload, "name": r.name, "rows": r.rows, "seconds": r.seconds,
            "rowsPerSecond": r.rate(), "ratioToMinCeiling": vs_ceiling,
            "ratioToBaseline": vs_baseline, "peakRssMiB": r.peak_rss_mib,
            "firstRowSeconds": r.first_row, "steadyRowsPerSecond": r.steady_rate(),
            "steadyRatioToMinCeiling": steady_vs_ceiling,
            "cpuSecondsPerMillionRows": r.cpu_per_million(),
            "machineCpuSecondsPerMillionRows": r.machine_cpu_per_million(), "machineBusy": busy,
            "samples": r.spread.map_or(1, |s| s.2),
            "minRowsPerSecond": r.spread.map(|s| s.0), "maxRowsPerSecond": r.spread.map(|s| s.1),
        }));
    }
    if !upsert_lines.is_empty() {
        println!(
            "\nchange streams (rows/s = events/s) vs adbsink Upsert of the uniform workload, \
             concurrency 6, same database:"
        );
        for line in &upsert_lines {
            println!("{line}");
        }
    }
    println!(
        "\nvs ceil. = adbsink / min(database ceiling, broker ceiling) of the same workload, start \
         to last row"
    );
    println!(
        "steady = from the first committed row to the last: without process start-up and the \
         broker's group join; CPU s/M = user + system seconds of the runtime per million rows"
    );
    println!(
        "mach. s/M = CPU seconds the whole machine was busy per million rows (database, broker, \
         runtime, everything; not what a database writes out after the measurement); busy = that \
         over seconds x cores. No rate passes {cores} / mach. s/M million rows/s"
    );
    if args.repeat > 1 {
        println!(
            "each figure is the median of {} rounds (RSS: the highest); ratios are of medians",
            args.repeat
        );
    }
    if let Some(path) = &args.json {
        let doc = json!({
            "messages": args.messages, "cores": cores, "databases": settings, "rounds": args.repeat,
            "durable": !args.unsafe_fast_db, "results": json_rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        eprintln!("bench: wrote {}", path.display());
    }
}
