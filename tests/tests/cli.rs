//! The `adbsink-runtime` binary as users run it: clear errors and exit codes, a clean exit 0 on
//! SIGTERM, and the password in no log line even at debug level.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::{Command, Stdio};
use std::time::Duration;

use adbsink_tests::harness::{Db, manifest, runtime_binary};
use adbsink_tests::{Kafka, Services, eventually, http_get, unique};

fn write_manifest(sink: &adbsink_crd::AnalyticDBSink) -> tempfile_path::TempPath {
    let path =
        std::env::temp_dir().join(format!("{}.yaml", sink.metadata.name.as_deref().unwrap()));
    std::fs::write(&path, serde_yaml::to_string(sink).unwrap()).unwrap();
    tempfile_path::TempPath(path)
}

mod tempfile_path {
    /// Removes the file when dropped.
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn an_invalid_manifest_exits_2_naming_the_field() {
    let services = Services::from_env();
    let mut sink = manifest(&services, Db::Postgres, &unique("cli-bad"), "t", "t");
    sink.spec.source.concurrency = 4;
    let file = write_manifest(&sink);
    let output = Command::new(runtime_binary())
        .args(["standalone", file.0.to_str().unwrap()])
        .env("ADBSINK_DB_PASSWORD", "x")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("spec.source.concurrency"), "{stderr}");
}

/// A broker that is down holds standalone provisioning in librdkafka's timeouts; SIGTERM must
/// still end the process at once, with exit 0.
#[test]
fn sigterm_while_provisioning_against_a_dead_broker_exits_0() {
    let services = Services::from_env();
    let mut sink = manifest(&services, Db::Postgres, &unique("cli-early"), "t", "t");
    // Nothing listens on port 1 of loopback.
    sink.spec.source.bootstrap_servers = "127.0.0.1:1".into();
    let file = write_manifest(&sink);
    let mut child = Command::new(runtime_binary())
        .args(["standalone", file.0.to_str().unwrap()])
        .env("ADBSINK_DB_PASSWORD", "x")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    // The line is logged once the signal handlers are in place; the process is then stuck on
    // the broker for 15 s, so there is no race with provisioning finishing first.
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("provisioning the internal topics") {
            break;
        }
        line.clear();
    }
    assert!(seen.contains("provisioning the internal topics"), "{seen}");
    let started = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "exit 0 on SIGTERM\n{seen}{rest}");
    assert!(
        rest.contains("interrupted before the sink started"),
        "{rest}"
    );
    // Well inside the 15 s the broker calls would have taken.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn manual_mode_names_every_missing_topic() {
    let services = Services::from_env();
    let name = unique("cli-manual");
    let mut sink = manifest(&services, Db::Postgres, &name, "t", "t");
    sink.spec.runtime.resource_creation = adbsink_crd::ResourceCreation::Manual;
    let file = write_manifest(&sink);
    let output = Command::new(runtime_binary())
        .args(["standalone", file.0.to_str().unwrap()])
        .env("ADBSINK_DB_PASSWORD", "x")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for role in ["offset", "config", "status", "error"] {
        assert!(
            stderr.contains(&format!("connect-{role}-{name}: does not exist")),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_metrics_stops_cleanly_on_sigterm_and_never_logs_the_password() {
    let services = Services::from_env();
    let name = unique("cli-run");
    let (topic, table, user) = (
        format!("{name}-in"),
        name.replace('-', "_"),
        name.replace('-', "_"),
    );
    let password = format!("pw-{}", unique("secret"));
    Db::Postgres
        .execute(
            &services,
            &format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, v text); \
                 CREATE USER {user} PASSWORD '{password}'; GRANT ALL ON {table} TO {user}"
            ),
        )
        .await;
    Kafka::new(&services.kafka_bootstrap)
        .create_topic(&topic, 2)
        .await
        .unwrap();
    let messages: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"id": {i}, "v": "v{i}"}}"#))
        .collect();
    Kafka::new(&services.kafka_bootstrap)
        .produce_to(&topic, messages.iter().map(|m| (None, None, m.as_bytes())))
        .await
        .unwrap();
    let mut sink = manifest(&services, Db::Postgres, &name, &topic, &table);
    sink.spec.destination.username = user.clone();
    sink.spec.destination.password = Some(password.clone());
    let file = write_manifest(&sink);
    let log = std::env::temp_dir().join(format!("{name}.log"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(runtime_binary())
        .args(["--http-addr", &format!("127.0.0.1:{port}")])
        .args([
            "standalone",
            file.0.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .args([
            "--kafka-property",
            "session.timeout.ms=6000",
            "--kafka-property",
            "heartbeat.interval.ms=300",
        ])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    eventually("200 rows", Duration::from_secs(60), || async {
        (Db::Postgres.count(&services, &table).await == 200).then_some(())
    })
    .await;
    let metrics = eventually(
        "written rows in /metrics",
        Duration::from_secs(30),
        || async {
            let text = http_get(port, "/metrics").await?;
            text.contains(&format!(
                "adbsink_records_written_total{{sink=\"{name}\"}} 200"
            ))
            .then_some(text)
        },
    )
    .await;
    for family in [
        "adbsink_records_consumed_total",
        "adbsink_batch_rows",
        "adbsink_write_seconds",
        "adbsink_write_retries_total",
    ] {
        assert!(metrics.contains(family), "{family} missing from\n{metrics}");
    }
    assert!(
        http_get(port, "/healthz")
            .await
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    assert!(
        http_get(port, "/readyz")
            .await
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    let started = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "exit 0 on SIGTERM");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped within 30 s"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(text.contains("sink stopped"), "{text}");
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON logs"
    );
    assert!(
        !text.contains(&password),
        "the password leaked into the log"
    );
}

#[test]
fn bad_arguments_and_overriding_managed_consumer_properties_are_refused() {
    let services = Services::from_env();
    let sink = manifest(&services, Db::Postgres, &unique("cli-args"), "t", "t");
    let file = write_manifest(&sink);
    let path = file.0.to_str().unwrap();
    for (args, expected) in [
        (vec!["standalone", path, "--threads", "0"], "at least 1"),
        (
            vec![
                "standalone",
                path,
                "--kafka-property",
                "enable.auto.commit=true",
            ],
            "enable.auto.commit is set by adbsink",
        ),
        (
            vec![
                "standalone",
                path,
                "--kafka-property",
                "auto.offset.reset=latest",
            ],
            "auto.offset.reset is set by adbsink",
        ),
        (
            vec!["standalone", path, "--kafka-property", "group.id=other"],
            "group.id is set by adbsink",
        ),
        (
            vec!["standalone", path, "--kafka-property", "sasl.password=x"],
            "sasl.password is set by adbsink",
        ),
        (vec!["standalone", path, "--log-format", "JSON"], "'JSON'"),
    ] {
        let output = Command::new(runtime_binary())
            .args(&args)
            .env("ADBSINK_DB_PASSWORD", "x")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
