//! End-to-end throughput against the databases' own bulk-load ceilings, on the local services.
//!
//! `cargo run --release -p adbsink-tests --bin bench -- [--messages N] [--json FILE] [--quick]
//! [--only TEXT] [--kafka-property KEY=VALUE]…`
//!
//! Produces N JSON messages (10 columns, about 200 bytes) into a 12-partition topic, then
//! measures in one run: a plain consumer (broker ceiling), COPY FROM STDIN (PostgreSQL ceiling),
//! LOAD DATA LOCAL INFILE (MariaDB ceiling), one INSERT + commit per message (the baseline, on a
//! sample), and adbsink standalone end to end for both databases, Insert and Upsert, concurrency
//! 1, 6 and 12, with the runtime's peak RSS. `--quick` runs one adbsink configuration per
//! database and checks row counts exactly: the CI smoke test. `--only` runs the adbsink
//! configurations whose name contains TEXT (e.g. `"MariaDB Upsert"`, `"concurrency 6"`);
//! `--kafka-property` passes a librdkafka setting to the runtime, for tuning. Timings are
//! reported, never asserted.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark tool: a panic is the report

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use adbsink_tests::harness::{Db, manifest};
use adbsink_tests::{Kafka, Services, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use sqlx::Connection;

const PARTITIONS: i32 = 12;
const USAGE: &str = "usage: bench [--messages N] [--json FILE] [--quick] [--only TEXT] \
                     [--kafka-property KEY=VALUE]... (details: tests/src/bin/bench.rs)";
const BASELINE_SAMPLE: usize = 20_000;

struct Args {
    messages: usize,
    json: Option<PathBuf>,
    quick: bool,
    only: Option<String>,
    kafka_properties: Vec<String>,
}

fn args() -> Args {
    let mut args = Args {
        messages: 1_000_000,
        json: None,
        quick: false,
        only: None,
        kafka_properties: Vec::new(),
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
            "--only" => args.only = Some(it.next().expect("--only TEXT")),
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
    args
}

/// One message's column values, shared by the JSON and the bulk-load files.
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

fn record(i: usize) -> Record {
    Record {
        id: i,
        qty: i % 1000,
        price: format!("{}.{:02}", i % 100_000, i % 100),
        ratio: format!("0.{:06}", (i * 7919) % 1_000_000),
        code: format!("C-{:08}", i % 100_000_000),
        title: format!("Product number {i} in the catalogue"),
        description: format!(
            "A longer description of item {i} that pads the message to a realistic size"
        ),
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

/// CSV line for COPY (empty unquoted = NULL) or LOAD DATA (`\N` = NULL).
fn to_csv(r: &Record, db: Db) -> String {
    let (null, active) = match db {
        Db::Postgres => ("", if r.active { "t" } else { "f" }),
        Db::MySql => ("\\N", if r.active { "1" } else { "0" }),
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
        r.note.as_deref().unwrap_or(null)
    )
}

fn ddl(db: Db, table: &str) -> String {
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

/// How often the runtime's written-rows counter is read.
const POLL: Duration = Duration::from_millis(20);
/// A steady rate over fewer than ten polls is mostly polling error.
const MIN_STEADY: Duration = POLL.saturating_mul(10);

struct Row {
    name: String,
    rows: usize,
    seconds: f64,
    peak_rss_mib: Option<f64>,
    /// adbsink: seconds from start to the first committed row (start-up and the group join).
    first_row: Option<f64>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.seconds
    }

    /// adbsink: rows/s once rows flow, without start-up and the group join. None when the
    /// first and last rows are too close to time apart with the counter's polling (a small N).
    fn steady_rate(&self) -> Option<f64> {
        let flowing = self.seconds - self.first_row?;
        (flowing >= MIN_STEADY.as_secs_f64()).then(|| self.rows as f64 / flowing)
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let services = Services::from_env();
    let n = args.messages;
    let records: Vec<Record> = (0..n).map(record).collect();
    let messages: Vec<String> = records.iter().map(to_json).collect();
    let avg = messages.iter().map(String::len).sum::<usize>() / n.max(1);
    eprintln!("bench: {n} messages, {avg} bytes on average, {PARTITIONS} partitions");

    let topic = unique("bench");
    let kafka = Kafka::new(&services.kafka_bootstrap);
    kafka.create_topic(&topic, PARTITIONS).await.unwrap();
    produce(&kafka, &topic, &messages).await;

    let mut results = Vec::new();
    results.push(broker_ceiling(&services, &topic, n));
    results.push(postgres_ceiling(&services, &records).await);
    results.push(mariadb_ceiling(&services, &records).await);
    for db in [Db::Postgres, Db::MySql] {
        results.push(baseline(&services, db, &records[..n.min(BASELINE_SAMPLE)]).await);
    }
    let configs: Vec<(Db, &str, u32)> = if args.quick {
        vec![(Db::Postgres, "Insert", 6), (Db::MySql, "Upsert", 6)]
    } else {
        let mut all = Vec::new();
        for db in [Db::Postgres, Db::MySql] {
            for mode in ["Insert", "Upsert"] {
                for concurrency in [1, 6, 12] {
                    all.push((db, mode, concurrency));
                }
            }
        }
        all
    };
    for (db, mode, concurrency) in configs {
        let name = adbsink_name(db, mode, concurrency);
        if args
            .only
            .as_ref()
            .is_some_and(|only| !name.contains(only.as_str()))
        {
            continue;
        }
        let run = Run {
            db,
            mode,
            concurrency,
            kafka_properties: &args.kafka_properties,
        };
        results.push(adbsink(&services, &topic, n, run).await);
    }
    report(&results, &args);
}

async fn produce(kafka: &Kafka, topic: &str, messages: &[String]) {
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
        let sends = chunk.iter().enumerate().map(|(i, m)| {
            producer.send(
                FutureRecord::<(), str>::to(topic)
                    .payload(m)
                    .partition((i as i32) % PARTITIONS),
                Duration::from_secs(60),
            )
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

fn broker_ceiling(services: &Services, topic: &str, n: usize) -> Row {
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
        name: "broker ceiling (plain consumer)".into(),
        rows: n,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_mib: None,
        first_row: None,
    }
}

async fn postgres_ceiling(services: &Services, records: &[Record]) -> Row {
    let table = unique("bench_copy").replace('-', "_");
    Db::Postgres
        .execute(services, &ddl(Db::Postgres, &table))
        .await;
    let data: String = records.iter().map(|r| to_csv(r, Db::Postgres)).collect();
    let mut conn = sqlx::PgConnection::connect(&services.pg_url).await.unwrap();
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} FROM STDIN WITH (FORMAT csv)"))
        .await
        .unwrap();
    for chunk in data.as_bytes().chunks(1 << 20) {
        copy.send(chunk).await.unwrap();
    }
    let rows = copy.finish().await.unwrap() as usize;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(rows, records.len());
    Db::Postgres
        .execute(services, &format!("DROP TABLE {table}"))
        .await;
    Row {
        name: "PostgreSQL ceiling (COPY FROM STDIN)".into(),
        rows,
        seconds,
        peak_rss_mib: None,
        first_row: None,
    }
}

async fn mariadb_ceiling(services: &Services, records: &[Record]) -> Row {
    let table = unique("bench_load").replace('-', "_");
    Db::MySql.execute(services, &ddl(Db::MySql, &table)).await;
    let file = std::env::temp_dir().join(format!("{table}.csv"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    for r in records {
        out.write_all(to_csv(r, Db::MySql).as_bytes()).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let (host, port) = endpoint(&services.mysql_url);
    let sql = format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE {table} FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n'",
        file.display()
    );
    let started = Instant::now();
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
    assert!(status.success(), "LOAD DATA failed");
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        Db::MySql.count(services, &table).await as usize,
        records.len()
    );
    Db::MySql
        .execute(services, &format!("DROP TABLE {table}"))
        .await;
    Row {
        name: "MariaDB ceiling (LOAD DATA LOCAL INFILE)".into(),
        rows: records.len(),
        seconds,
        peak_rss_mib: None,
        first_row: None,
    }
}

/// The seed's design: one INSERT and one commit per message.
async fn baseline(services: &Services, db: Db, records: &[Record]) -> Row {
    let table = unique("bench_one").replace('-', "_");
    db.execute(services, &ddl(db, &table)).await;
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
    Row {
        name: format!(
            "{} baseline (INSERT + commit per message, {} sampled)",
            name_of(db),
            records.len()
        ),
        rows: records.len(),
        seconds,
        peak_rss_mib: None,
        first_row: None,
    }
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
}

/// adbsink standalone as a separate process: from a new group (committed offset zero) to all
/// N rows in the table.
async fn adbsink(services: &Services, topic: &str, n: usize, run: Run<'_>) -> Row {
    let Run {
        db,
        mode,
        concurrency,
        kafka_properties,
    } = run;
    let name = unique("bench-sink");
    let table = name.replace('-', "_");
    db.execute(services, &ddl(db, &table)).await;
    let mut sink = manifest(services, db, &name, topic, &table);
    sink.spec.source.concurrency = concurrency;
    if mode == "Upsert" {
        sink.spec.write.write_mode = adbsink_crd::WriteMode::Upsert;
        sink.spec.write.primary_key = vec!["id".into()];
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
    peak = peak.max(rss_mib(pid).unwrap_or(0.0));
    let count = db.count(services, &table).await as usize;
    assert_eq!(count, n, "{name}: exactly one row per message");
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
        "bench: {name}: first row after {:.2} s (start-up, group join), all rows after {seconds:.2} s",
        first_row.unwrap_or(seconds)
    );
    Row {
        name: adbsink_name(db, mode, concurrency),
        rows: n,
        seconds,
        peak_rss_mib: Some(peak),
        first_row,
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

fn endpoint(url: &str) -> (String, String) {
    let after_at = url.rsplit('@').next().unwrap();
    let host_port = after_at.split('/').next().unwrap();
    let (host, port) = host_port.rsplit_once(':').unwrap();
    (host.to_string(), port.to_string())
}

fn report(results: &[Row], args: &Args) {
    let find = |prefix: &str| {
        results
            .iter()
            .find(|r| r.name.starts_with(prefix))
            .map(Row::rate)
    };
    let broker = find("broker ceiling").unwrap_or(f64::NAN);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nadbsink benchmark: {} messages, {cores} cores\n",
        args.messages
    );
    println!(
        "{:<62} {:>9} {:>8} {:>11} {:>12} {:>9} {:>12} {:>12} {:>9}",
        "measurement",
        "rows/s",
        "seconds",
        "vs ceiling",
        "vs baseline",
        "1st row s",
        "steady rows/s",
        "steady vs c.",
        "peak RSS"
    );
    let mut json_rows = Vec::new();
    for r in results {
        let db = if r.name.contains("PostgreSQL") {
            "PostgreSQL"
        } else if r.name.contains("MariaDB") {
            "MariaDB"
        } else {
            ""
        };
        let db_ceiling = find(&format!("{db} ceiling"));
        let baseline = find(&format!("{db} baseline"));
        let is_adbsink = r.name.starts_with("adbsink");
        let ceiling = db_ceiling.map(|c| c.min(broker));
        let vs_ceiling = ceiling.filter(|_| is_adbsink).map(|c| r.rate() / c);
        let vs_baseline = baseline.filter(|_| is_adbsink).map(|b| r.rate() / b);
        let steady_vs_ceiling = ceiling.zip(r.steady_rate()).map(|(c, s)| s / c);
        let show = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or(String::new(), f);
        println!(
            "{:<62} {:>9.0} {:>8.2} {:>11} {:>12} {:>9} {:>12} {:>12} {:>9}",
            r.name,
            r.rate(),
            r.seconds,
            show(vs_ceiling, &|v| format!("{v:.2}x")),
            show(vs_baseline, &|v| format!("{v:.1}x")),
            show(r.first_row, &|v| format!("{v:.2}")),
            show(r.steady_rate(), &|v| format!("{v:.0}")),
            show(steady_vs_ceiling, &|v| format!("{v:.2}x")),
            show(r.peak_rss_mib, &|m| format!("{m:.0} MiB")),
        );
        json_rows.push(json!({
            "name": r.name, "rows": r.rows, "seconds": r.seconds, "rowsPerSecond": r.rate(),
            "ratioToMinCeiling": vs_ceiling, "ratioToBaseline": vs_baseline, "peakRssMiB": r.peak_rss_mib,
            "firstRowSeconds": r.first_row, "steadyRowsPerSecond": r.steady_rate(),
            "steadyRatioToMinCeiling": steady_vs_ceiling,
        }));
    }
    println!("\nvs ceiling = adbsink / min(database ceiling, broker ceiling), start to last row");
    println!(
        "steady = from the first committed row to the last: without process start-up and the \
         broker's group join"
    );
    if let Some(path) = &args.json {
        let doc = json!({"messages": args.messages, "cores": cores, "results": json_rows});
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        eprintln!("bench: wrote {}", path.display());
    }
}
