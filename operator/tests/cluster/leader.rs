//! Two replicas with leader election: one acts, the other waits and acts only once the Lease
//! is its own; a leader killed outright is replaced within the Lease's duration.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;

use crate::harness::{
    Cluster, Password, apply_new_sink, eventually, free_port, manifest, metric_at,
};

const RECONCILES: &str = "adbsink_operator_reconciles_total";

struct Replica {
    name: &'static str,
    child: std::process::Child,
    port: u16,
}

async fn holder(cluster: &Cluster) -> Option<String> {
    let lease = cluster
        .api::<Lease>()
        .get_opt("adbsink-operator")
        .await
        .ok()??;
    lease.spec?.holder_identity
}

async fn reconciled(cluster: &Cluster, name: &str) -> Option<()> {
    let sink = cluster.sinks().get_opt(name).await.ok()??;
    sink.status?.phase.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_never_acts_and_takes_over_within_the_lease_duration() {
    let Some(cluster) = Cluster::without_operator("leader").await else {
        return;
    };
    let ns = cluster.namespace.clone();
    let mut replicas: Vec<Replica> = ["replica-a", "replica-b"]
        .into_iter()
        .map(|name| {
            let port = free_port();
            let log = std::env::temp_dir().join(format!("{ns}-{name}.log"));
            let child = cluster.spawn_operator(
                &["--leader-election"],
                &[("POD_NAMESPACE", &ns), ("POD_NAME", name)],
                port,
                &log,
            );
            Replica { name, child, port }
        })
        .collect();
    let leader = eventually(&cluster, "a leader", || async {
        let holder = holder(&cluster).await?;
        replicas.iter().position(|r| holder.starts_with(r.name))
    })
    .await;
    let first = format!("{ns}-1");
    apply_new_sink(&cluster, &first, &manifest(&first, Password::Inline("pw"))).await;
    eventually(&cluster, "the leader reconciles", || {
        reconciled(&cluster, &first)
    })
    .await;
    let standby = 1 - leader;
    let standby_count = eventually(&cluster, "the standby's /metrics", || {
        metric_at(replicas[standby].port, RECONCILES)
    })
    .await;
    assert_eq!(
        standby_count, 0.0,
        "the standby reconciled while another led"
    );

    // The leader dies without releasing the Lease.
    replicas[leader].child.kill().unwrap();
    replicas[leader].child.wait().unwrap();
    let killed = Instant::now();
    let second = format!("{ns}-2");
    apply_new_sink(
        &cluster,
        &second,
        &manifest(&second, Password::Inline("pw")),
    )
    .await;
    eventually(&cluster, "the new leader reconciles", || {
        reconciled(&cluster, &second)
    })
    .await;
    let took = killed.elapsed();
    let new_holder = holder(&cluster).await.unwrap_or_default();
    assert!(
        new_holder.starts_with(replicas[standby].name),
        "{new_holder}"
    );
    // The standby takes over once it has seen the same record for a whole Lease duration
    // (15 s), noticed within one 5 s retry period, then reconciles: 20 s, and slack for load.
    assert!(took < Duration::from_secs(30), "took over after {took:?}");
    eprintln!("take-over after {:.1} s", took.as_secs_f64());
    for replica in &mut replicas {
        let _ = replica.child.kill();
        let _ = replica.child.wait();
    }
    cluster.finish().await;
}
