//! MySQL Insert's LOAD DATA LOCAL INFILE path (`sink-runtime/src/load.rs`) on real MariaDB and
//! the real binary: clean batches are loaded, byte for byte what INSERT would have written; a
//! batch the load would coerce (MariaDB turns every data error of a LOCAL load into a warning,
//! strict mode or not) is rolled back and written with INSERT, so each bad row is refused and
//! none is damaged.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use adbsink_tests::harness::{Db, RuntimeProcess, manifest, read_topic, table_and_topic};
use adbsink_tests::{Kafka, Services, eventually};

const COLUMNS: &str = "(id BIGINT PRIMARY KEY, n INT NOT NULL DEFAULT 7, code VARCHAR(8), \
                       at DATETIME, t TEXT, d DECIMAL(6,2)) DEFAULT CHARSET=utf8mb4";

/// Values the load's text format must carry exactly: its separators, escapes and NULL marker
/// inside strings, 4-byte UTF-8, empty strings, nested JSON, a column left out.
fn clean() -> Vec<(String, Vec<Option<&'static str>>)> {
    vec![
        (
            r#"{"id": 1, "n": 1, "code": "tab\there", "at": "2024-02-29 23:59:59", "t": "line\nbreak\r\nand \\ backslash", "d": 1234.5}"#.into(),
            vec![Some("1"), Some("1"), Some("tab\there"), Some("2024-02-29 23:59:59"), Some("line\nbreak\r\nand \\ backslash"), Some("1234.50")],
        ),
        (
            r#"{"id": 2, "n": 2, "code": "\\N", "t": "NULL", "d": null}"#.into(),
            vec![Some("2"), Some("2"), Some("\\N"), None, Some("NULL"), None],
        ),
        (
            r#"{"id": 3, "code": "", "t": "😀 café \u0000 end", "d": -0.01}"#.into(),
            vec![Some("3"), Some("7"), Some(""), None, Some("😀 café \0 end"), Some("-0.01")],
        ),
        (
            r#"{"id": 4, "n": -2147483648, "t": {"nested": [1, "two", null]}, "at": "2024-01-01T10:00:00"}"#.into(),
            vec![Some("4"), Some("-2147483648"), None, Some("2024-01-01 10:00:00"), Some(r#"{"nested": [1, "two", null]}"#), None],
        ),
    ]
}

/// Values a LOCAL load would coerce or skip with a warning, each beside a good row.
fn bad() -> Vec<&'static str> {
    vec![
        r#"{"id": 10, "n": "abc"}"#,
        r#"{"id": 11, "n": "12abc"}"#,
        r#"{"id": 12, "code": "much too long"}"#,
        r#"{"id": 13, "at": "2024-13-45 00:00:00"}"#,
        r#"{"id": 14, "d": 99999.999}"#,
        r#"{"id": 15, "n": null}"#,
        r#"{"id": 1, "n": 100, "code": "dup"}"#,
    ]
}

async fn produce(services: &Services, topic: &str, messages: &[String]) {
    Kafka::new(&services.kafka_bootstrap)
        .produce_to(
            topic,
            messages.iter().map(|m| (Some(0), None, m.as_bytes())),
        )
        .await
        .expect("produce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_insert_loads_clean_batches_and_writes_a_warned_one_with_insert() {
    let services = Services::from_env();
    let (name, topic, table) =
        table_and_topic(&services, Db::MySql, "mysql-load", COLUMNS, 1).await;
    let mut sink = manifest(&services, Db::MySql, &name, &topic, &table);
    sink.spec.write.linger_ms = 50;
    adbsink_runtime::standalone::provision(&adbsink_tests::harness::config(&sink))
        .await
        .expect("provision");
    let process = RuntimeProcess::start(&sink);
    let select = format!(
        "SELECT CAST(id AS CHAR), CAST(n AS CHAR), code, CAST(at AS CHAR), t, CAST(d AS CHAR) \
         FROM {table} ORDER BY id"
    );

    let clean = clean();
    let messages: Vec<String> = clean.iter().map(|(m, _)| m.clone()).collect();
    produce(&services, &topic, &messages).await;
    eventually(
        "the clean rows written",
        Duration::from_secs(60),
        || async {
            (process.metric("adbsink_records_written_total").await == clean.len() as u64)
                .then_some(())
        },
    )
    .await;
    let port = process.port;
    let loads = |outcome: &'static str| async move {
        let text = adbsink_tests::http_get(port, "/metrics")
            .await
            .unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("adbsink_mysql_loads_total"))
            .filter(|l| l.contains(&format!("outcome=\"{outcome}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    assert!(loads("loaded").await >= 1, "the clean batch was loaded");
    assert_eq!(loads("warned").await, 0);
    assert_eq!(loads("failed").await, 0);
    let expected: Vec<Vec<Option<String>>> = clean
        .iter()
        .map(|(_, row)| row.iter().map(|v| v.map(str::to_string)).collect())
        .collect();
    assert_eq!(Db::MySql.rows(&services, &select).await, expected);

    // Each bad row between two good ones, in one batch.
    let mut mixed = Vec::new();
    for (i, bad) in bad().into_iter().enumerate() {
        mixed.push(format!(r#"{{"id": {}, "t": "good"}}"#, 100 + i));
        mixed.push(bad.to_string());
    }
    mixed.push(r#"{"id": 199, "t": "good"}"#.to_string());
    produce(&services, &topic, &mixed).await;
    let good = bad().len() + 1;
    eventually(
        "the good rows written, the bad refused",
        Duration::from_secs(60),
        || async {
            let written = process.metric("adbsink_records_written_total").await;
            let failed = process.metric("adbsink_records_failed_total").await;
            (written == (clean.len() + good) as u64 && failed == bad().len() as u64).then_some(())
        },
    )
    .await;
    assert!(loads("warned").await >= 1, "the mixed batch's load warned");
    process.terminate().await;

    let rows = Db::MySql.rows(&services, &select).await;
    assert_eq!(rows[..clean.len()], expected[..], "no clean row changed");
    let ids: Vec<String> = rows[clean.len()..]
        .iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    let good_ids: Vec<String> = (0..bad().len())
        .map(|i| (100 + i).to_string())
        .chain(["199".to_string()])
        .collect();
    assert_eq!(ids, good_ids, "no bad row in the table, coerced or not");
    let topics = adbsink_crd::resolved_topics(&name, &sink.spec.runtime);
    let refused = read_topic(&services, &topics.error).await;
    let mut refused: Vec<String> = refused
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    refused.sort();
    let mut expected_refused: Vec<String> = bad().into_iter().map(str::to_string).collect();
    expected_refused.sort();
    assert_eq!(refused, expected_refused);
}

/// Puts `local_infile` back on however the test ends: the other tests load.
struct LocalInfileBack;

impl Drop for LocalInfileBack {
    fn drop(&mut self) {
        let services = Services::from_env();
        let (host, port) = Db::MySql.endpoint(&services);
        let status = std::process::Command::new("mariadb")
            .args([
                "-h",
                &host,
                "-P",
                &port.to_string(),
                "-uadbsink",
                "-padbsink",
                "-e",
            ])
            .arg("SET GLOBAL local_infile = 1")
            .status()
            .expect("mariadb client");
        assert!(status.success(), "local_infile back on");
    }
}

/// MySQL 8 ships with `local_infile=OFF`, and managed servers often keep it so: the sink writes
/// with INSERT, every row, and stops asking. Serial (`outage_`): it changes a global setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_mysql_without_local_infile_writes_every_row_with_insert() {
    let services = Services::from_env();
    let (name, topic, table) = table_and_topic(&services, Db::MySql, "no-infile", COLUMNS, 1).await;
    let _back = LocalInfileBack;
    Db::MySql
        .execute(&services, "SET GLOBAL local_infile = 0")
        .await;
    let mut sink = manifest(&services, Db::MySql, &name, &topic, &table);
    sink.spec.write.linger_ms = 50;
    sink.spec.write.max_batch_rows = 10;
    adbsink_runtime::standalone::provision(&adbsink_tests::harness::config(&sink))
        .await
        .expect("provision");
    let process = RuntimeProcess::start(&sink);
    let messages: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"id": {i}, "t": "row {i}"}}"#))
        .collect();
    produce(&services, &topic, &messages).await;
    eventually("every row written", Duration::from_secs(60), || async {
        (process.metric("adbsink_records_written_total").await == 100).then_some(())
    })
    .await;
    let text = adbsink_tests::http_get(process.port, "/metrics")
        .await
        .unwrap();
    let loads: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("adbsink_mysql_loads_total"))
        .collect();
    assert!(
        !loads.iter().any(|l| l.contains("outcome=\"loaded\"")),
        "{loads:?}"
    );
    let count = |outcome: &str| -> f64 {
        loads
            .iter()
            .filter(|l| l.contains(&format!("outcome=\"{outcome}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    // Each of the writes in flight when the first refusal came may have asked; none after it.
    assert!(
        (1.0..=6.0).contains(&count("failed")) && count("off") >= 1.0,
        "asked, then never again: {loads:?}"
    );
    process.terminate().await;
    assert_eq!(Db::MySql.count(&services, &table).await, 100);
}
