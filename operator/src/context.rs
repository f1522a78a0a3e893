//! What every reconcile shares: the API client, the Kafka provisioner factory, the event
//! recorder, metrics, the operator's settings, and per-sink retry backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adbsink_crd::AnalyticDBSink;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource};
use tokio::sync::watch;

use crate::conditions::Check;
use crate::kafka::{ProvisionerFactory, default_factory};
use crate::metrics::Metrics;

/// The runtime image's `nonroot` user.
pub const DEFAULT_SINK_UID: i64 = 65532;

/// Settings from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Runtime image for sinks that do not set `spec.sinkTemplate.image`.
    pub sink_image: String,
    /// Create a NetworkPolicy per sink.
    pub network_policies: bool,
    /// Watched namespaces; empty means all. Also the scope of the consumer-group conflict check,
    /// since the operator may read sinks nowhere else.
    pub namespaces: Vec<String>,
    /// UID and GID of the sink pods; None: the platform assigns them.
    pub sink_run_as: Option<i64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sink_image: adbsink_crd::DEFAULT_SINK_IMAGE.to_string(),
            network_policies: false,
            namespaces: Vec::new(),
            sink_run_as: Some(DEFAULT_SINK_UID),
        }
    }
}

pub struct Context {
    pub client: Client,
    pub provisioners: ProvisionerFactory,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub config: Config,
    /// Consecutive failures per sink (`namespace/name`), for the error backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The config record this process last published per sink (`namespace/name`).
    published: Mutex<HashMap<String, String>>,
    /// The last complete provisioning per sink (`namespace/name`).
    provisioned: Mutex<HashMap<String, Provisioned>>,
    /// The controllers' caches of the sinks, for the conflict check, each with whether its
    /// first listing is complete.
    sinks: Mutex<Vec<(Store<AnalyticDBSink>, watch::Receiver<bool>)>>,
}

/// How long the conflict check waits for a watch's first listing before it lists itself.
const LISTED_WITHIN: Duration = Duration::from_secs(10);
const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Context {
    pub fn new(client: Client, config: Config, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: crate::build::meta::MANAGER.to_string(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            provisioners: default_factory(),
            metrics,
            config,
            failures: Mutex::default(),
            published: Mutex::default(),
            provisioned: Mutex::default(),
            sinks: Mutex::default(),
        }
    }

    /// Adds a controller's cache of the sinks it watches.
    pub fn register_sinks(&self, store: Store<AnalyticDBSink>, listed: watch::Receiver<bool>) {
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((store, listed));
    }

    /// Every sink in the controllers' caches, once each has been filled; None when no
    /// controller runs (reconcile called directly, as the fast tests do).
    /// None when no controller runs, or a watch has not listed within `LISTED_WITHIN`.
    pub async fn cached_sinks(&self) -> Option<Vec<AnalyticDBSink>> {
        let stores = self.sinks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if stores.is_empty() {
            return None;
        }
        let mut all = Vec::new();
        for (store, mut listed) in stores {
            // Until the first full list is in, an older sink claiming the same group could be
            // missing from it. (Not `Store::wait_until_ready`: it wakes only the last of
            // several waiters, and concurrent reconciles wait together.)
            // A watch that cannot list (RBAC missing in one namespace) must not hold every
            // reconcile: past the bound, the caller lists from the API server instead.
            match tokio::time::timeout(LISTED_WITHIN, listed.wait_for(|listed| *listed)).await {
                Ok(Ok(_)) => all.extend(store.state().iter().map(|s| s.as_ref().clone())),
                _ => return None,
            }
        }
        Some(all)
    }

    /// Replaces how Kafka admin clients are made.
    pub fn with_provisioners(mut self, factory: ProvisionerFactory) -> Self {
        self.provisioners = factory;
        self
    }

    /// Publishes an Event on the sink. A failure to record is logged, never fails the reconcile.
    pub async fn event(&self, sink: &AnalyticDBSink, warning: bool, reason: &str, note: String) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &sink.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "cannot record event");
        }
    }

    /// Next retry delay for a failing sink: 5 s doubling up to 5 min.
    pub fn backoff(&self, key: &str) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return BACKOFF_MAX;
        };
        let count = failures.entry(key.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        backoff_after(*count)
    }

    pub fn reset_backoff(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }

    /// Whether `record` is not what this process last published for the sink `key`: true after
    /// a spec change, and once per sink after the operator starts or takes over the lead.
    pub fn config_unpublished(&self, key: &str, record: &str) -> bool {
        self.published.lock().map_or(true, |published| {
            published.get(key).map(String::as_str) != Some(record)
        })
    }

    pub fn config_published(&self, key: &str, record: String) {
        if let Ok(mut published) = self.published.lock() {
            published.insert(key.to_string(), record);
        }
    }

    pub fn forget_config(&self, key: &str) {
        if let Ok(mut published) = self.published.lock() {
            published.remove(key);
        }
    }
}

/// A sink's topics and group as its last complete provisioning found them.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// Generation and configuration hash (spec and credentials) it was done for.
    pub fingerprint: String,
    pub at: Instant,
    pub topics: Check,
    pub group: Option<Check>,
}

impl Provisioned {
    /// Whether a reconcile for `fingerprint` may trust this provisioning instead of redoing it.
    pub fn reusable(&self, fingerprint: &str, within: Duration) -> bool {
        self.fingerprint == fingerprint && self.at.elapsed() < within
    }
}

impl Context {
    /// The last provisioning of the sink `key`, if it was for `fingerprint` and less than
    /// `within` ago.
    pub fn provisioned(
        &self,
        key: &str,
        fingerprint: &str,
        within: Duration,
    ) -> Option<Provisioned> {
        let known = self.provisioned.lock().ok()?.get(key).cloned()?;
        known.reusable(fingerprint, within).then_some(known)
    }

    pub fn mark_provisioned(&self, key: &str, provisioned: Provisioned) {
        if let Ok(mut all) = self.provisioned.lock() {
            all.insert(key.to_string(), provisioned);
        }
    }

    pub fn forget_provisioned(&self, key: &str) {
        if let Ok(mut all) = self.provisioned.lock() {
            all.remove(key);
        }
    }
}

/// Delay after the `failures`-th consecutive failure.
fn backoff_after(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_up_to_five_minutes() {
        let delays: Vec<u64> = (1..=8).map(|n| backoff_after(n).as_secs()).collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff_after(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn a_provisioning_is_reused_only_for_the_same_spec_and_credentials_while_fresh() {
        let done = |ago: Duration| Provisioned {
            fingerprint: "3/abc".into(),
            at: Instant::now() - ago,
            topics: Check::ok("TopicsCreated", "ok"),
            group: None,
        };
        let within = Duration::from_secs(300);
        assert!(done(Duration::ZERO).reusable("3/abc", within));
        assert!(
            !done(Duration::ZERO).reusable("4/abc", within),
            "a new generation"
        );
        assert!(
            !done(Duration::ZERO).reusable("3/abd", within),
            "new credentials or config"
        );
        assert!(
            !done(Duration::from_secs(301)).reusable("3/abc", within),
            "too old"
        );
    }
}
