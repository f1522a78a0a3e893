//! A new sink end to end in one reconcile, a reconcile that changes nothing, the config record
//! and the restart annotation. (Pause, scale, drift and deletion are tested on the real API
//! server: operator/tests/cluster/.)

use std::collections::BTreeMap;

use adbsink_crd::Phase;
use adbsink_runtime::records::ConfigRecord;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use crate::common::*;

fn env(deployment: &Deployment) -> BTreeMap<String, Value> {
    container(deployment)
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), serde_json::to_value(e).unwrap()))
        .collect()
}

/// The object without what the fake API server bumps on every write.
fn stable<T: serde::Serialize>(object: &T) -> Value {
    let mut value = serde_json::to_value(object).unwrap();
    let meta = value["metadata"].as_object_mut().unwrap();
    for field in ["resourceVersion", "managedFields", "generation"] {
        meta.remove(field);
    }
    value
}

#[tokio::test]
async fn new_sink_gets_topics_group_secret_deployment_and_becomes_ready() {
    bounded(async {
        let h = Harness::new().await;
        let (name, source) = h.new_sink("new", 3, "s3cret", |_| {}).await;

        let action = h.reconcile(&name).await.expect("reconcile");
        assert_eq!(action, Action::requeue(std::time::Duration::from_secs(30)));

        // Topics on the broker, with their partitions and cleanup policy.
        let topics = internal_topics(&name);
        assert_eq!(
            topics.len(),
            4,
            "dead-letter and error share one topic by default"
        );
        for (suffix, count, compact) in [
            ("offset", 12, true),
            ("config", 1, true),
            ("status", 6, true),
            ("error", 6, false),
        ] {
            let topic = format!("connect-{suffix}-{name}");
            assert_eq!(partitions(&topic), Some(count), "{topic}");
            let policy = cleanup_policy(&topic).await.unwrap_or_default();
            assert_eq!(policy.contains("compact"), compact, "{topic}: {policy}");
        }
        let group = format!("connect-{name}");
        assert!(group_exists(&group, &source).await);

        // The effective configuration is on the config topic, keyed by the sink name.
        let sink_now = h.get(&name).await;
        let configs = provisioner()
            .read_latest::<ConfigRecord>(&format!("connect-config-{name}"))
            .await
            .unwrap();
        assert_eq!(
            configs.get(&name),
            Some(&ConfigRecord::new(&name, &sink_now.spec))
        );

        // The credentials Secret.
        let secret = h.secrets.get(&format!("{name}-credentials")).await.unwrap();
        let data: BTreeMap<_, _> = secret
            .data
            .clone()
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect();
        assert_eq!(
            data,
            BTreeMap::from([
                ("password".into(), "s3cret".into()),
                ("username".into(), "adbsink".into())
            ])
        );
        let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.name.as_str(), owner.controller),
            (name.as_str(), Some(true))
        );

        // The Deployment.
        let deployment = h.deployments.get(&format!("{name}-sink")).await.unwrap();
        let spec = deployment.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some(adbsink_crd::DEFAULT_SINK_IMAGE)
        );
        let env = env(&deployment);
        assert_eq!(env["ADBSINK_THREADS"]["value"], "3");
        assert_eq!(env["ADBSINK_SINK_NAME"]["value"], json!(name));
        let config: ConfigRecord =
            serde_json::from_str(env["ADBSINK_CONFIG"]["value"].as_str().unwrap()).unwrap();
        assert_eq!(config, ConfigRecord::new(&name, &sink_now.spec));
        assert_eq!(
            env["ADBSINK_DB_PASSWORD"]["valueFrom"],
            json!({"secretKeyRef": {"name": format!("{name}-credentials"), "key": "password"}})
        );
        let annotations = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .clone()
            .unwrap();
        assert_eq!(annotations["adbsink.io/config-hash"].len(), 64);

        // Not available yet: provisioning.
        let status = sink_now.status.clone().unwrap();
        assert_eq!(status.phase, Some(Phase::Provisioning));
        assert_eq!(
            state(&sink_now, "Ready"),
            ("False".into(), "Progressing".into())
        );
        assert_eq!(
            state(&sink_now, "TopicsReady"),
            ("True".into(), "TopicsCreated".into())
        );
        assert_eq!(
            state(&sink_now, "ConsumerGroupReady"),
            ("True".into(), "GroupCreated".into())
        );

        // Pods become ready: Running.
        h.set_ready_replicas(&name, 2).await;
        h.reconcile(&name).await.expect("reconcile");
        let ready = h.get(&name).await;
        let status = ready.status.clone().unwrap();
        assert_eq!(status.phase, Some(Phase::Running));
        assert_eq!(status.observed_generation, ready.metadata.generation);
        assert_eq!(state(&ready, "Ready"), ("True".into(), "Ready".into()));
        assert_eq!(
            state(&ready, "SinkAvailable"),
            ("True".into(), "Available".into())
        );
        assert_eq!(
            state(&ready, "Degraded"),
            ("False".into(), "NoFailedTasks".into())
        );
        assert_eq!(state(&ready, "TopicsReady").0, "True");
        assert_eq!((status.replicas, status.ready_replicas), (2, 2));
        assert_eq!(status.consumer_group.as_deref(), Some(group.as_str()));
        assert_eq!(status.lag, Some(0));
        let mut created = topics.clone();
        created.sort();
        assert_eq!(status.created_topics, created);
        assert!(status.tasks.is_empty());

        // A second reconcile changes nothing.
        let before = (
            stable(&ready),
            stable(&h.secrets.get(&format!("{name}-credentials")).await.unwrap()),
            stable(&h.deployments.get(&format!("{name}-sink")).await.unwrap()),
        );
        h.reconcile(&name).await.expect("reconcile");
        let after_sink = h.get(&name).await;
        assert_eq!(
            after_sink.metadata.resource_version,
            ready.metadata.resource_version
        );
        let after = (
            stable(&after_sink),
            stable(&h.secrets.get(&format!("{name}-credentials")).await.unwrap()),
            stable(&h.deployments.get(&format!("{name}-sink")).await.unwrap()),
        );
        assert_eq!(before, after);

        drop_kafka(&created, &group).await;
    })
    .await;
}

/// Records on a sink's config topic (one partition; each publish is a batch of one, so the high
/// watermark counts them even on Tansu).
async fn config_records(name: &str) -> i64 {
    provisioner()
        .end_offsets(&format!("connect-config-{name}"))
        .await
        .unwrap()[&0]
}

#[tokio::test]
async fn the_config_record_is_published_when_the_configuration_changes() {
    bounded(async {
        let h = Harness::new().await;
        let (name, _) = h.new_sink("config", 3, "pw", |_| {}).await;

        h.reconcile(&name).await.expect("reconcile");
        h.reconcile(&name).await.expect("reconcile");
        assert_eq!(config_records(&name).await, 1, "unchanged: nothing new");

        edit(&h, &name, json!({"write": {"lingerMs": 100}})).await;
        assert_eq!(config_records(&name).await, 2);
        let configs = provisioner()
            .read_latest::<ConfigRecord>(&format!("connect-config-{name}"))
            .await
            .unwrap();
        assert_eq!(
            configs[&name],
            ConfigRecord::new(&name, &h.get(&name).await.spec)
        );

        drop_sink_kafka(&name).await;
    })
    .await;
}

/// Merges `spec` into the sink, reconciles, and returns its Deployment.
async fn edit(h: &Harness, name: &str, spec: Value) -> Deployment {
    h.sinks
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await
        .unwrap();
    h.reconcile(name).await.expect("reconcile");
    h.deployments.get(&format!("{name}-sink")).await.unwrap()
}

#[tokio::test]
async fn a_new_restart_annotation_rolls_the_pods_once_and_is_recorded() {
    bounded(async {
        let h = Harness::new().await;
        let (name, _) = h.new_sink("restart", 1, "pw", |_| {}).await;
        h.reconcile(&name).await.expect("reconcile");

        let annotate = json!({"metadata": {"annotations": {"adbsink.io/restart": "r1"}}});
        h.sinks
            .patch(&name, &PatchParams::default(), &Patch::Merge(&annotate))
            .await
            .unwrap();
        h.reconcile(&name).await.expect("reconcile");
        let template = |d: Deployment| {
            d.spec
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()
        };
        let rolled = template(h.deployments.get(&format!("{name}-sink")).await.unwrap());
        assert_eq!(rolled["adbsink.io/restart"], "r1");
        let restarted = h.get(&name).await;
        assert_eq!(
            restarted.status.unwrap().last_restart.as_deref(),
            Some("r1")
        );
        let events: kube::Api<k8s_openapi::api::events::v1::Event> =
            kube::Api::namespaced(h.client.clone(), NS);
        let restarts = events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("Restarted"))
            .count();
        assert_eq!(restarts, 1);

        // The same value again is not a new restart.
        h.reconcile(&name).await.expect("reconcile");
        assert_eq!(
            template(h.deployments.get(&format!("{name}-sink")).await.unwrap()),
            rolled
        );
        // Nor is removing the annotation: the pods keep their last restart.
        let remove = json!({"metadata": {"annotations": {"adbsink.io/restart": null}}});
        h.sinks
            .patch(&name, &PatchParams::default(), &Patch::Merge(&remove))
            .await
            .unwrap();
        h.reconcile(&name).await.expect("reconcile");
        assert_eq!(
            template(h.deployments.get(&format!("{name}-sink")).await.unwrap()),
            rolled,
            "removing the annotation rolled the pods again"
        );

        drop_sink_kafka(&name).await;
    })
    .await;
}
