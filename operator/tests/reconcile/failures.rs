//! What the status says when something is wrong: invalid spec, conflict, missing Secret,
//! Kafka down, a failed task.

use std::time::Duration;

use adbsink_crd::Phase;
use adbsink_runtime::records::{RECORD_VERSION, StatusRecord, TaskState, now_rfc3339};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::PostParams;
use kube::runtime::controller::Action;

use crate::common::*;

async fn children_exist(h: &Harness, name: &str) -> bool {
    h.secrets
        .get_opt(&format!("{name}-credentials"))
        .await
        .unwrap()
        .is_some()
        || h.deployments
            .get_opt(&format!("{name}-sink"))
            .await
            .unwrap()
            .is_some()
}

#[tokio::test]
async fn invalid_spec_is_reported_and_creates_nothing() {
    bounded(async {
        let h = Harness::new().await;
        let name = unique("invalid");
        let mut invalid = sink(&name, "orders");
        invalid.spec.source.concurrency = 5;
        h.create(invalid).await;

        let action = h
            .reconcile(&name)
            .await
            .expect("an invalid spec is not an error");
        assert_eq!(action, Action::await_change());
        let reported = h.get(&name).await;
        assert_eq!(
            state(&reported, "Ready"),
            ("False".into(), "InvalidSpec".into())
        );
        assert!(
            condition(&reported, "Ready")
                .message
                .contains("spec.source.concurrency")
        );
        assert_eq!(reported.status.as_ref().unwrap().phase, Some(Phase::Failed));
        assert!(!children_exist(&h, &name).await);
    })
    .await;
}

#[tokio::test]
async fn the_newer_of_two_sinks_sharing_a_group_gets_resource_conflict() {
    bounded(async {
        let h = Harness::new().await;
        let group = unique("shared");
        let mut older = sink("same", "orders");
        older.metadata.namespace = Some("ns-a".into());
        older.spec.runtime.consumer_group = Some(group.clone());
        older.metadata.creation_timestamp = Some(Time("2020-01-01T00:00:00Z".parse().unwrap()));
        h.create(older).await;
        let mut newer = sink(&unique("newer"), "orders");
        newer.spec.runtime.consumer_group = Some(group.clone());
        let name = newer.metadata.name.clone().unwrap();
        h.create(newer).await;
        h.put_secret("db", &[("password", "pw")]).await;

        h.reconcile(&name).await.expect("reconcile");
        let reported = h.get(&name).await;
        assert_eq!(
            state(&reported, "Ready"),
            ("False".into(), "ResourceConflict".into())
        );
        assert!(condition(&reported, "Ready").message.contains("ns-a/same"));
        assert!(!children_exist(&h, &name).await);
    })
    .await;
}

#[tokio::test]
async fn a_missing_password_secret_is_reported_by_name() {
    bounded(async {
        let h = Harness::new().await;
        let name = unique("nosecret");
        h.create(sink(&name, "orders")).await;
        h.reconcile(&name).await.expect("reconcile");
        let reported = h.get(&name).await;
        assert_eq!(
            state(&reported, "CredentialsReady"),
            ("False".into(), "SecretNotFound".into())
        );
        assert_eq!(
            condition(&reported, "CredentialsReady").message,
            "Secret \"db\" not found"
        );
        assert_eq!(state(&reported, "Ready").1, "SecretNotFound");
        assert!(!children_exist(&h, &name).await);
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_broker_sets_kafka_unavailable_and_fails_for_backoff() {
    bounded(async {
        let h = Harness::new().await;
        let name = unique("nokafka");
        let mut s = sink(&name, "orders");
        s.spec.source.bootstrap_servers = "127.0.0.1:9".into();
        h.put_secret("db", &[("password", "pw")]).await;
        h.create(s).await;
        let error = h
            .reconcile(&name)
            .await
            .expect_err("Kafka errors are retried");
        assert_eq!(error.metric_label(), "kafka");
        let reported = h.get(&name).await;
        assert_eq!(
            state(&reported, "Ready"),
            ("False".into(), "KafkaUnavailable".into())
        );
        assert_eq!(
            reported.status.as_ref().unwrap().phase,
            Some(Phase::Pending)
        );
        assert!(h.ctx.metrics.render().contains("error=\"kafka\""));
    })
    .await;
}

#[tokio::test]
async fn a_failed_task_on_the_status_topic_degrades_the_sink() {
    bounded(async {
        let h = Harness::new().await;
        let (name, _) = h.new_sink("failed", 1, "pw", |_| {}).await;
        h.reconcile(&name).await.expect("reconcile");
        h.set_ready_replicas(&name, 2).await;
        h.reconcile(&name).await.expect("reconcile");
        assert_eq!(state(&h.get(&name).await, "Ready").0, "True");

        // A live sink pod whose task 0 failed, and a stale FAILED record of a pod long gone.
        let pod = format!("{name}-sink-7d9f-abcde");
        let pods: Api<Pod> = Api::namespaced(h.client.clone(), NS);
        let labels = [("adbsink.io/sink".to_string(), name.clone())].into();
        let meta = ObjectMeta {
            name: Some(pod.clone()),
            labels: Some(labels),
            ..Default::default()
        };
        pods.create(
            &PostParams::default(),
            &Pod {
                metadata: meta,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let status_topic = format!("connect-status-{name}");
        let p = provisioner();
        for (task, error) in [
            (format!("{pod}-0"), "duplicate key"),
            (format!("{name}-sink-gone-0"), "stale"),
        ] {
            let record = StatusRecord {
                version: RECORD_VERSION,
                sink: name.clone(),
                task_id: task,
                state: TaskState::Failed,
                partitions: vec![0],
                records_written: 5,
                records_failed: 1,
                records_skipped: 0,
                last_error: Some(error.into()),
                timestamp: now_rfc3339(),
            };
            p.publish(&status_topic, &record.key(), &record)
                .await
                .unwrap();
        }

        let degraded = eventually("Degraded", Duration::from_secs(30), || async {
            h.reconcile(&name).await.expect("reconcile");
            let s = h.get(&name).await;
            (state(&s, "Degraded").0 == "True").then_some(s)
        })
        .await;
        assert_eq!(
            state(&degraded, "Degraded"),
            ("True".into(), "TaskFailed".into())
        );
        assert_eq!(
            state(&degraded, "Ready"),
            ("False".into(), "TaskFailed".into())
        );
        let status = degraded.status.clone().unwrap();
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!(
            status.last_error.as_deref(),
            Some(format!("task {pod}-0 failed: duplicate key").as_str())
        );
        assert_eq!(
            status.tasks.len(),
            1,
            "the gone pod's task is ignored: {:?}",
            status.tasks
        );
        assert_eq!(status.tasks[0].state, "FAILED");
        assert_eq!((status.records_written, status.records_failed), (5, 1));

        drop_sink_kafka(&name).await;
    })
    .await;
}
