//! Many sinks on one operator: every one provisioned within a stated bound, and at rest the
//! operator reconciles each about twice a minute (its 30 s refresh), not on its own status
//! writes. Measured from the operator's own /metrics.
//!
//! 200 sinks on the 2-core test machine, which also runs the control plane and the broker:
//! provisioned in about 61 s on a quiet machine; the bound leaves room for a busy one.
//! "Provisioned", not Ready: without a kubelet no sink pod ever runs. Refreshes skip the Kafka
//! admin work of an unchanged sink (see the operator README), which is what makes 200 fit.

use std::time::{Duration, Instant};

use adbsink_crd::AnalyticDBSink;
use kube::api::ListParams;

use crate::harness::{Cluster, Password, bootstrap, manifest};

const SINKS: usize = 200;

fn sinks() -> usize {
    // A smaller run to look at the operator by hand: ADBSINK_SCALE_SINKS=20.
    std::env::var("ADBSINK_SCALE_SINKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SINKS)
}
/// Every sink's topics, group and credentials ready, and its Deployment applied, within this,
/// on a 2-core machine that also runs the control plane, the broker and the operator.
const PROVISIONED_WITHIN: Duration = Duration::from_secs(240);

fn provisioned(sink: &AnalyticDBSink) -> bool {
    let Some(status) = &sink.status else {
        return false;
    };
    ["TopicsReady", "ConsumerGroupReady", "CredentialsReady"]
        .iter()
        .all(|t| {
            status
                .conditions
                .iter()
                .any(|c| c.type_ == *t && c.status == "True")
        })
}

async fn create_topics(names: &[String]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin");
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(-1)))
        .collect();
    for result in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        result.expect("topic");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sinks_are_provisioned_and_reconciled_twice_a_minute_at_rest() {
    let Some(cluster) = Cluster::start("scale").await else {
        return;
    };
    let names: Vec<String> = (0..sinks())
        .map(|i| format!("s{i}-{}", cluster.namespace))
        .collect();
    let names: Vec<String> = names
        .into_iter()
        .map(|n| n.chars().take(48).collect())
        .collect();
    create_topics(&names.iter().map(|n| format!("{n}-in")).collect::<Vec<_>>()).await;
    let stream: String = names
        .iter()
        .map(|n| format!("---\n{}", manifest(n, Password::Inline("pw"))))
        .collect();
    let started = Instant::now();
    cluster.kubectl_with(&["apply", "--server-side", "-f", "-"], Some(&stream));
    loop {
        let listed = cluster
            .sinks()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        let ready = listed.iter().filter(|s| provisioned(s)).count();
        if ready == sinks() {
            break;
        }
        assert!(
            started.elapsed() < PROVISIONED_WITHIN,
            "{ready} of {} sinks provisioned after {PROVISIONED_WITHIN:?}",
            sinks()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let took = started.elapsed();
    eprintln!(
        "{} sinks provisioned in {:.1} s",
        sinks(),
        took.as_secs_f64()
    );
    let reconciles = cluster
        .metric("adbsink_operator_reconcile_duration_seconds_count")
        .await;
    let seconds = cluster
        .metric("adbsink_operator_reconcile_duration_seconds_sum")
        .await;
    eprintln!("reconciles so far: {reconciles:?}, {seconds:?} s in all");

    // At rest: one minute of the operator's own count of reconciles.
    let counter = "adbsink_operator_reconciles_total";
    let before = cluster.metric(counter).await.expect("metrics");
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = cluster.metric(counter).await.expect("metrics");
    let per_sink_minute =
        (after - before) / sinks() as f64 / (window.elapsed().as_secs_f64() / 60.0);
    eprintln!("at rest: {per_sink_minute:.2} reconciles per sink per minute");
    assert!(
        (1.0..=3.0).contains(&per_sink_minute),
        "{per_sink_minute:.2} reconciles per sink per minute at rest, expected about 2"
    );
    cluster.finish().await;
}
