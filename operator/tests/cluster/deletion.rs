//! Deleting in the "wrong" order: namespace deletion, `kubectl delete -f` of a file with both,
//! or Argo CD cascades remove the Secrets a sink references before the sink. Cleanup needs only
//! what reaches Kafka, so the sink (and its namespace) still go.

use adbsink_crd::AnalyticDBSink;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;

use crate::harness::{
    Cluster, Password, apply_new_sink, create_password_secret, eventually, group_exists, manifest,
    topic_exists, topics_become,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_whose_database_secret_went_first_is_still_deleted() {
    let Some(cluster) = Cluster::start("delete-order").await else {
        return;
    };
    let name = cluster.namespace.clone();
    create_password_secret(&cluster, "db", "pw");
    let delete = format!(
        "{}  deletionPolicy: Delete\n",
        manifest(&name, Password::Ref("db"))
    );
    apply_new_sink(&cluster, &name, &delete).await;
    // Everything a first reconcile builds: the credentials Secret, the Deployment (owned by the
    // sink, with the finalizer on the sink) and the topics it created.
    let created = eventually(&cluster, "the sink's children and topics", || async {
        let sink: AnalyticDBSink = cluster.sinks().get(&name).await.ok()?;
        cluster
            .api::<Deployment>()
            .get_opt(&format!("{name}-sink"))
            .await
            .ok()??;
        cluster
            .api::<Secret>()
            .get_opt(&format!("{name}-credentials"))
            .await
            .ok()??;
        let created = sink.status?.created_topics;
        (!created.is_empty()).then_some(created)
    })
    .await;
    assert!(created.iter().all(|t| topic_exists(t)));

    cluster.kubectl_ok(&["delete", "secret", "db"]);
    cluster.kubectl_ok(&["delete", "adbsink", &name, "--wait=false"]);
    eventually(&cluster, "the sink gone", || async {
        cluster
            .sinks()
            .get_opt(&name)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    topics_become(&cluster, &created, false).await;
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_the_topics_and_delete_removes_them() {
    let Some(cluster) = Cluster::start("policies").await else {
        return;
    };
    create_password_secret(&cluster, "db", "pw");
    let mut provisioned = Vec::new();
    for policy in ["Retain", "Delete"] {
        let name = format!("{}-{}", cluster.namespace, policy.to_lowercase());
        let sink = format!(
            "{}  deletionPolicy: {policy}\n",
            manifest(&name, Password::Ref("db"))
        );
        apply_new_sink(&cluster, &name, &sink).await;
        let created = eventually(&cluster, "topics provisioned", || async {
            let created = cluster
                .sinks()
                .get(&name)
                .await
                .ok()?
                .status?
                .created_topics;
            (created.len() == 4).then_some(created)
        })
        .await;
        topics_become(&cluster, &created, true).await;
        cluster.kubectl_ok(&["delete", "adbsink", &name]);
        provisioned.push((name, created));
    }
    let [(retained, kept), (removed, deleted)] = &provisioned[..] else {
        unreachable!()
    };
    topics_become(&cluster, deleted, false).await;
    assert!(
        !group_exists(&format!("connect-{removed}"), &format!("{removed}-in")).await,
        "Delete left the consumer group"
    );
    // The Retain sink went (kubectl delete waited for it) and left its topics, group and an
    // Event.
    assert!(kept.iter().all(|t| topic_exists(t)), "{kept:?}");
    assert!(group_exists(&format!("connect-{retained}"), &format!("{retained}-in")).await);
    let events = cluster.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("reason=Retained,involvedObject.name={retained}"),
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "no Retained Event");
    cluster.finish().await;
}
