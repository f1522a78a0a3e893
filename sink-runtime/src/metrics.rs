//! Prometheus metrics of one sink process.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub partition: String,
}

pub struct Metrics {
    registry: Registry,
    pub consumed: Counter,
    pub written: Counter,
    pub failed: Family<ReasonLabel, Counter>,
    pub skipped: Family<ReasonLabel, Counter>,
    pub retries: Counter,
    pub batch_rows: Histogram,
    pub write_seconds: Histogram,
    pub lag: Family<PartitionLabel, Gauge>,
}

impl Metrics {
    pub fn new(sink: &str) -> Self {
        let mut root = Registry::with_prefix_and_labels(
            "adbsink",
            [(
                std::borrow::Cow::Borrowed("sink"),
                std::borrow::Cow::Owned(sink.to_string()),
            )]
            .into_iter(),
        );
        let m = Self {
            consumed: Counter::default(),
            written: Counter::default(),
            failed: Family::default(),
            skipped: Family::default(),
            retries: Counter::default(),
            batch_rows: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            write_seconds: Histogram::new(exponential_buckets(0.001, 2.5, 14)),
            lag: Family::default(),
            registry: Registry::default(),
        };
        root.register(
            "records_consumed",
            "Messages read from the source topic",
            m.consumed.clone(),
        );
        root.register(
            "records_written",
            "Rows committed to the table",
            m.written.clone(),
        );
        root.register(
            "records_failed",
            "Messages sent to the dead-letter or error topic, by reason",
            m.failed.clone(),
        );
        root.register(
            "records_skipped",
            "Records that change nothing (tombstones, ignored deletes, other tables, DDL), by reason",
            m.skipped.clone(),
        );
        root.register(
            "write_retries",
            "Writes retried after a transient error",
            m.retries.clone(),
        );
        root.register("batch_rows", "Rows per written batch", m.batch_rows.clone());
        root.register(
            "write_seconds",
            "Time to write and commit one batch",
            m.write_seconds.clone(),
        );
        root.register(
            "lag",
            "Messages not yet committed, per source partition",
            m.lag.clone(),
        );
        Self {
            registry: root,
            ..m
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_the_sink_and_reasons() {
        let m = Metrics::new("orders");
        m.written.inc_by(3);
        m.failed
            .get_or_create(&ReasonLabel {
                reason: "InvalidJson".into(),
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains("adbsink_records_written_total{sink=\"orders\"} 3"),
            "{text}"
        );
        assert!(text.contains("reason=\"InvalidJson\""), "{text}");
    }
}
