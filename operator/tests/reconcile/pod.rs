//! The operator's Deployment run as a kubelet would run it: the real `adbsink-runtime` binary
//! with the container's args and env (Secret keys and the pod name resolved), against the real
//! broker and PostgreSQL. What the pod then reports on the status topic must come back into the
//! sink's status on the next reconcile.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use adbsink_crd::InitialOffset;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, PostParams};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgPool;

use crate::common::*;

/// The runtime binary next to this test's executable (`cargo build --workspace --bins`).
fn runtime_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("adbsink-runtime");
    assert!(
        path.exists(),
        "{} missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// The container's environment as the kubelet resolves it for `pod`.
fn pod_env(
    deployment: &k8s_openapi::api::apps::v1::Deployment,
    secret: &Secret,
    pod: &str,
) -> BTreeMap<String, String> {
    let data = secret.data.clone().unwrap_or_default();
    container(deployment)
        .env
        .iter()
        .flatten()
        .map(|var| {
            let value = match (&var.value, &var.value_from) {
                (Some(value), _) => value.clone(),
                (None, Some(from)) => {
                    if let Some(field) = &from.field_ref {
                        assert_eq!(field.field_path, "metadata.name", "{var:?}");
                        pod.to_string()
                    } else {
                        let key = from.secret_key_ref.as_ref().unwrap_or_else(|| {
                            panic!(
                                "{} comes from neither a value, a field nor a Secret",
                                var.name
                            )
                        });
                        assert_eq!(Some(&key.name), secret.metadata.name.as_ref(), "{var:?}");
                        String::from_utf8(data[&key.key].0.clone()).unwrap()
                    }
                }
                (None, None) => String::new(),
            };
            (var.name.clone(), value)
        })
        .collect()
}

/// Kills the pod's process if the test fails before stopping it.
struct PodProcess(Option<Child>);

impl Drop for PodProcess {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run_pod(args: &[String], env: &BTreeMap<String, String>) -> Child {
    Command::new(runtime_binary())
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn the_deployments_pod_writes_the_rows_and_reports_its_tasks() {
    bounded(async {
        let h = Harness::new().await;
        let table = unique("pod").replace('-', "_");
        let (name, source) = h
            .new_sink("pod", 3, "adbsink", |s| {
                s.spec.source.concurrency = 3;
                s.spec.source.initial_offset = InitialOffset::Earliest;
                s.spec.destination.table = table.clone();
            })
            .await;
        let url =
            std::env::var("ADBSINK_PG_URL").expect("ADBSINK_PG_URL (scripts/dev-services.sh env)");
        let db = PgPool::connect(&url).await.unwrap();
        sqlx::query(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, name text)"
        ))
        .execute(&db)
        .await
        .unwrap();

        h.reconcile(&name).await.expect("reconcile");
        let deployment = h.deployments.get(&format!("{name}-sink")).await.unwrap();
        assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(1));
        let secret = h.secrets.get(&format!("{name}-credentials")).await.unwrap();
        let pod = format!("{name}-sink-7d4b9-x2k8q");
        let mut env = pod_env(&deployment, &secret, &pod);
        // The one change: the pod's own network namespace would make [::]:8080 private.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        env.insert("ADBSINK_HTTP_ADDR".into(), format!("127.0.0.1:{port}"));
        let args = container(&deployment).args.clone().unwrap();
        let mut process = PodProcess(Some(run_pod(&args, &env)));
        // Read as it comes, so a full pipe never stalls the pod.
        let mut stderr = process.0.as_mut().unwrap().stderr.take().unwrap();
        let logs = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
            text
        });

        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .create()
            .unwrap();
        for id in 0..90 {
            let payload = format!(r#"{{"id": {id}, "name": "n{id}"}}"#);
            producer
                .send(
                    FutureRecord::<(), _>::to(&source).payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
        let count_sql = format!("SELECT count(*) FROM {table}");
        // The pod joins with the product's default 45 s session timeout, which Tansu answers
        // after half of it.
        eventually("90 rows in the table", Duration::from_secs(60), || async {
            let (n,): (i64,) = sqlx::query_as(&count_sql).fetch_one(&db).await.ok()?;
            (n == 90).then_some(())
        })
        .await;

        // The kubelet's pod, so the operator counts the task records as live.
        let mut pod_object: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": pod, "namespace": NS, "labels": {"adbsink.io/sink": name}}
        }))
        .unwrap();
        pod_object.spec = Some(Default::default());
        Api::<Pod>::namespaced(h.client.clone(), NS)
            .create(&PostParams::default(), &pod_object)
            .await
            .unwrap();
        h.set_ready_replicas(&name, 1).await;
        let tasks = eventually(
            "three RUNNING tasks in the status",
            Duration::from_secs(60),
            || async {
                h.reconcile(&name).await.ok()?;
                let status = h.get(&name).await.status?;
                let written: i64 = status.tasks.iter().map(|t| t.records_written).sum();
                (status.tasks.len() == 3
                    && status.tasks.iter().all(|t| t.state == "RUNNING")
                    && written == 90)
                    .then_some(status.tasks)
            },
        )
        .await;
        for task in &tasks {
            assert!(task.id.starts_with(&format!("{pod}-")), "{}", task.id);
        }

        let mut child = process.0.take().unwrap();
        assert!(
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        let logs = logs.join().unwrap();
        assert_eq!(status.code(), Some(0), "exit 0 on SIGTERM\n{logs}");
        // JSON lines, as the Deployment asks.
        for line in logs.lines() {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "{line}"
            );
        }

        sqlx::query(&format!("DROP TABLE {table}"))
            .execute(&db)
            .await
            .unwrap();
        drop_sink_kafka(&name).await;
    })
    .await;
}
