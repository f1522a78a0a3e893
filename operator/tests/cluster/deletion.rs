//! Deleting in the "wrong" order: namespace deletion, `kubectl delete -f` of a file with both,
//! or Argo CD cascades remove the Secrets a sink references before the sink. Cleanup needs only
//! what reaches Kafka, so the sink (and its namespace) still go.

use std::time::Duration;

use adbsink_crd::AnalyticDBSink;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;

use crate::harness::{
    Cluster, Password, apply_new_sink, bootstrap, create_password_secret, eventually, manifest,
};

fn topic_exists(topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("consumer");
    consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata")
        .topics()
        .iter()
        .any(|t| t.name() == topic)
}

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
    eventually(
        &cluster,
        "deletionPolicy Delete removed the topics",
        || async {
            let created = created.clone();
            let gone =
                tokio::task::spawn_blocking(move || created.iter().all(|t| !topic_exists(t)))
                    .await
                    .ok()?;
            gone.then_some(())
        },
    )
    .await;
    cluster.finish().await;
}
