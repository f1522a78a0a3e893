//! HTTP endpoints for the kubelet and Prometheus: `/healthz`, `/readyz`, `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<Readiness>,
}

/// Ready means: a standby waiting for the Lease (so a rollout of several replicas completes),
/// or a leader whose watches have all listed what they watch (before that, its view of the
/// sinks is partial).
#[derive(Debug)]
pub struct Readiness {
    standby: AtomicBool,
    /// Watches not yet synced; `usize::MAX` before any was started.
    unsynced: AtomicUsize,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            standby: AtomicBool::new(false),
            unsynced: AtomicUsize::new(usize::MAX),
        }
    }
}

impl Readiness {
    pub fn standby(&self, waiting: bool) {
        self.standby.store(waiting, Ordering::Relaxed);
    }

    /// Called before the watches start, with how many there are.
    pub fn watching(&self, watches: usize) {
        self.unsynced.store(watches, Ordering::Relaxed);
    }

    /// Called once per watch, when its first listing is complete.
    pub fn synced(&self) {
        let _ = self
            .unsynced
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub fn is_ready(&self) -> bool {
        self.standby.load(Ordering::Relaxed) || self.unsynced.load(Ordering::Relaxed) == 0
    }
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    if health.ready.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.metrics.render(),
    )
}

/// Serves until `stop` turns true.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = adbsink_runtime::http::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, router(health))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_as_a_standby_or_once_every_watch_synced() {
        let readiness = Readiness::default();
        assert!(!readiness.is_ready(), "nothing started yet");
        readiness.standby(true);
        assert!(readiness.is_ready(), "a standby waiting for the Lease");
        readiness.standby(false);
        readiness.watching(2);
        readiness.synced();
        assert!(!readiness.is_ready(), "one watch still listing");
        readiness.synced();
        assert!(readiness.is_ready());
        readiness.synced();
        assert!(readiness.is_ready(), "no underflow");
    }
}
