//! A sink's life as a user lives it: `kubectl apply`, `kubectl get`, `kubectl adbsink` pause,
//! resume and scale, someone editing or deleting the Deployment by hand, and the operator
//! killed with SIGKILL while the sink changes.

use adbsink_crd::AnalyticDBSink;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;

use crate::harness::{
    Cluster, Password, apply_new_sink, condition, create_password_secret, eventually, manifest,
    topics_become,
};

async fn replicas(cluster: &Cluster, name: &str) -> Option<i32> {
    cluster
        .api::<Deployment>()
        .get_opt(&format!("{name}-sink"))
        .await
        .ok()??
        .spec?
        .replicas
}

async fn replicas_become(cluster: &Cluster, name: &str, want: i32) {
    eventually(cluster, &format!("{want} sink replicas"), || async {
        (replicas(cluster, name).await == Some(want)).then_some(())
    })
    .await;
}

/// Reasons of the Events about the sink, with who reported them.
async fn events(cluster: &Cluster, name: &str) -> Vec<(String, String, String)> {
    let listed = cluster
        .api::<Event>()
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    listed
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.reporting_controller.unwrap_or_default(),
                e.reporting_instance.unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_from_apply_to_scale_drift_and_an_operator_killed_midway() {
    let Some(mut cluster) = Cluster::start("lifecycle").await else {
        return;
    };
    let name = cluster.namespace.clone();
    create_password_secret(&cluster, "db", "pw");
    apply_new_sink(&cluster, &name, &manifest(&name, Password::Ref("db"))).await;

    // The children, owned by the sink so that a foreground deletion waits for them.
    let sink: AnalyticDBSink = eventually(&cluster, "topics and group provisioned", || async {
        let sink: AnalyticDBSink = cluster.sinks().get(&name).await.ok()?;
        let status = sink.status.as_ref()?;
        (status.created_topics.len() == 4 && status.consumer_group.is_some()).then_some(sink)
    })
    .await;
    topics_become(&cluster, &sink.status.clone().unwrap().created_topics, true).await;
    replicas_become(&cluster, &name, 2).await;
    let deployment = cluster
        .api::<Deployment>()
        .get(&format!("{name}-sink"))
        .await
        .unwrap();
    let secret = cluster
        .api::<Secret>()
        .get(&format!("{name}-credentials"))
        .await
        .unwrap();
    for owners in [deployment.owner_references(), secret.owner_references()] {
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, sink.uid().unwrap());
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(owners[0].block_owner_deletion, Some(true));
    }
    assert_eq!(
        sink.status.as_ref().unwrap().consumer_group.as_deref(),
        Some(format!("connect-{name}").as_str())
    );
    // No kubelet: the pods stay Pending, so the sink is provisioned but not yet available.
    eventually(&cluster, "Ready=False Progressing", || async {
        (condition(&cluster, &name, "Ready").await? == ("False".into(), "Progressing".into()))
            .then_some(())
    })
    .await;
    // Created by the first reconcile; the next ones report what they find: existing.
    for (type_, reasons) in [
        ("TopicsReady", ["TopicsCreated", "TopicsExist"]),
        ("ConsumerGroupReady", ["GroupCreated", "GroupExists"]),
    ] {
        let (status, reason) = condition(&cluster, &name, type_).await.unwrap();
        assert!(
            status == "True" && reasons.contains(&reason.as_str()),
            "{type_}: {status} {reason}"
        );
    }
    let reported = eventually(
        &cluster,
        "TopicsCreated and GroupCreated Events",
        || async {
            let events = events(&cluster, &name).await;
            let reasons: Vec<&str> = events.iter().map(|(r, _, _)| r.as_str()).collect();
            (reasons.contains(&"TopicsCreated") && reasons.contains(&"GroupCreated"))
                .then_some(events)
        },
    )
    .await;
    for (_, controller, instance) in &reported {
        assert_eq!(
            (controller.as_str(), instance.as_str()),
            ("adbsink-operator", cluster.pod_name().as_str())
        );
    }

    // The printer columns, as `kubectl get` shows them.
    let table = cluster.kubectl_ok(&["get", "adbsink", &name]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "TOPIC",
            "TABLE",
            "CONCURRENCY",
            "READY",
            "PHASE",
            "LAG",
            "AGE"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..8],
        [
            name.as_str(),
            "AnalyticDBForPostgreSQL",
            &format!("{name}-in"),
            "t",
            "6",
            "False",
            "Provisioning",
            "0"
        ]
    );

    // Pause, resume and scale through the plugin.
    cluster.plugin(&["pause", &name]);
    replicas_become(&cluster, &name, 0).await;
    eventually(&cluster, "Ready=True Paused", || async {
        (condition(&cluster, &name, "Ready").await? == ("True".into(), "Paused".into()))
            .then_some(())
    })
    .await;
    cluster.plugin(&["resume", &name]);
    replicas_become(&cluster, &name, 2).await;
    cluster.plugin(&["scale", &name, "--concurrency", "12"]);
    replicas_become(&cluster, &name, 4).await;
    let status = cluster.plugin(&["status", &name]);
    assert!(status.contains(&name), "{status}");

    // Drift: the Deployment scaled by hand is scaled back; deleted, it is made again.
    let generation = |d: Deployment| d.metadata.generation.unwrap_or(0);
    let scaled_at = generation(
        cluster
            .api::<Deployment>()
            .get(&format!("{name}-sink"))
            .await
            .unwrap(),
    );
    cluster.kubectl_ok(&[
        "scale",
        "deployment",
        &format!("{name}-sink"),
        "--replicas=7",
    ]);
    eventually(
        &cluster,
        "the hand-scaled Deployment scaled back",
        || async {
            let now = cluster
                .api::<Deployment>()
                .get(&format!("{name}-sink"))
                .await
                .ok()?;
            // Two changes: the user's, then the operator's.
            let reverted =
                generation(now.clone()) >= scaled_at + 2 && now.spec.as_ref()?.replicas == Some(4);
            reverted.then_some(())
        },
    )
    .await;
    let before = cluster
        .api::<Deployment>()
        .get(&format!("{name}-sink"))
        .await
        .unwrap()
        .uid();
    cluster.kubectl_ok(&["delete", "deployment", &format!("{name}-sink")]);
    eventually(&cluster, "the Deployment made again", || async {
        let now = cluster
            .api::<Deployment>()
            .get_opt(&format!("{name}-sink"))
            .await
            .ok()??;
        (now.uid() != before).then_some(())
    })
    .await;

    // SIGKILL, a change while no operator runs, a restart: it converges.
    cluster.stop_operator();
    cluster.plugin(&["scale", &name, "--concurrency", "3"]);
    cluster.start_operator();
    replicas_become(&cluster, &name, 1).await;
    eventually(&cluster, "status observed the new generation", || async {
        let sink = cluster.sinks().get(&name).await.ok()?;
        (sink.status?.observed_generation == sink.metadata.generation).then_some(())
    })
    .await;
    cluster.finish().await;
}
