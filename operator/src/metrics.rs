//! Prometheus metrics of the controller: reconciles, errors by kind, reconcile duration.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type ErrorLabels = Vec<(&'static str, &'static str)>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("adbsink_operator");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        // 10 ms .. ~40 s: a reconcile waits on Kafka round trips with 15 s timeouts.
        let duration = Histogram::new(exponential_buckets(0.01, 2.0, 13));
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by kind of error",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            duration.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            duration,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn failed(&self, kind: &'static str) {
        self.errors.get_or_create(&vec![("error", kind)]).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_error_kind_and_the_duration_histogram() {
        let metrics = Metrics::default();
        metrics.reconciled(Duration::from_millis(20));
        metrics.failed("kafka");
        metrics.failed("kafka");
        let text = metrics.render();
        assert!(
            text.contains("adbsink_operator_reconciles_total 1"),
            "{text}"
        );
        assert!(
            text.contains("adbsink_operator_reconcile_errors_total{error=\"kafka\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("adbsink_operator_reconcile_duration_seconds_count 1"),
            "{text}"
        );
    }
}
