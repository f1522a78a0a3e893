//! `kubectl adbsink status` output: plain aligned text, no colours, stable for scripts to grep.

use std::fmt::Write;

use adbsink_crd::AnalyticDBSink;

pub fn status(sink: &AnalyticDBSink) -> String {
    let mut out = String::new();
    let name = sink.metadata.name.as_deref().unwrap_or_default();
    let namespace = sink.metadata.namespace.as_deref().unwrap_or_default();
    let spec = &sink.spec;
    let status = sink.status.clone().unwrap_or_default();
    let _ = writeln!(out, "Name:         {namespace}/{name}");
    let _ = writeln!(
        out,
        "Source:       {} ({} threads, {:?})",
        spec.source.topic, spec.source.concurrency, spec.source.initial_offset
    );
    let _ = writeln!(
        out,
        "Destination:  {:?} {}:{}/{}.{}",
        spec.destination.instance_type,
        spec.destination.host,
        spec.destination.port_or_default(),
        spec.destination.database,
        spec.destination.table
    );
    let phase = status
        .phase
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "Pending".into());
    let _ = writeln!(
        out,
        "Phase:        {phase}{}",
        if spec.paused { " (paused)" } else { "" }
    );
    let _ = writeln!(
        out,
        "Replicas:     {}/{} ready",
        status.ready_replicas, status.replicas
    );
    let lag = status
        .lag
        .map_or_else(|| "unknown".to_string(), |l| l.to_string());
    let _ = writeln!(out, "Lag:          {lag}");
    let skipped = match status.records_skipped {
        0 => String::new(),
        n => format!(", {n} skipped"),
    };
    let _ = writeln!(
        out,
        "Records:      {} written, {} failed{skipped}",
        status.records_written, status.records_failed
    );
    if let Some(error) = &status.last_error {
        let _ = writeln!(out, "Last error:   {error}");
    }
    let _ = writeln!(
        out,
        "\nCONDITION           STATUS  REASON                MESSAGE"
    );
    for c in &status.conditions {
        let _ = writeln!(
            out,
            "{:<19} {:<7} {:<21} {}",
            c.type_, c.status, c.reason, c.message
        );
    }
    if !status.tasks.is_empty() {
        let _ = writeln!(
            out,
            "\nTASK                          STATE     PARTITIONS  WRITTEN  FAILED  LAST ERROR"
        );
        for t in &status.tasks {
            let partitions = t
                .partitions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let _ = writeln!(
                out,
                "{:<29} {:<9} {:<11} {:<8} {:<7} {}",
                t.id,
                t.state,
                if partitions.is_empty() {
                    "-".into()
                } else {
                    partitions
                },
                t.records_written,
                t.records_failed,
                t.last_error.as_deref().unwrap_or("")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use adbsink_crd::{AnalyticDBSinkStatus, Phase, TaskStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;

    #[test]
    fn status_shows_conditions_tasks_lag_and_the_last_error() {
        let mut sink: AnalyticDBSink = adbsink_crd::from_yaml(
            "apiVersion: adbsink.io/v1alpha1\nkind: AnalyticDBSink\nmetadata: {name: orders, namespace: shop}\n\
             spec:\n  source: {bootstrapServers: \"b:9092\", topic: orders}\n  \
             destination: {instanceType: AnalyticDBForPostgreSQL, host: h, database: d, table: t, username: u, \
             passwordSecretRef: {name: s, key: password}}\n",
        )
        .unwrap();
        sink.status = Some(AnalyticDBSinkStatus {
            phase: Some(Phase::Running),
            lag: Some(42),
            replicas: 2,
            ready_replicas: 1,
            last_error: Some("boom".into()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: "TaskFailed".into(),
                message: "task pod-0 failed".into(),
                last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }],
            tasks: vec![TaskStatus {
                id: "pod-0".into(),
                state: "FAILED".into(),
                partitions: vec![0, 3],
                records_written: 10,
                records_failed: 1,
                records_skipped: 0,
                last_error: Some("boom".into()),
                updated_at: None,
            }],
            ..AnalyticDBSinkStatus::default()
        });
        let text = status(&sink);
        for expected in [
            "shop/orders",
            "5432/d.t",
            "Phase:        Running",
            "1/2 ready",
            "Lag:          42",
            "Last error:   boom",
            "Ready               False   TaskFailed",
            "pod-0                         FAILED    0,3",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
