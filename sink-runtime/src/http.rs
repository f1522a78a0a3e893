//! `/metrics`, `/healthz` and `/readyz` for the kubelet and Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::records::TaskState;
use crate::stats::TaskStats;

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    tasks: Vec<Arc<TaskStats>>,
}

/// Binds `addr`. `[::]` is the usual address, so IPv6-only clusters can probe and scrape; a
/// kernel without IPv6 cannot bind it, and IPv4 is all there is to serve then. A port in use
/// or a privileged port is an error either way.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Err(e)
            if addr.ip().is_unspecified()
                && addr.is_ipv6()
                && !matches!(
                    e.kind(),
                    std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
                ) =>
        {
            let v4 = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::info!(error = %e, %addr, fallback = %v4, "cannot bind IPv6; serving IPv4 only");
            tokio::net::TcpListener::bind(v4).await
        }
        other => other,
    }
}

pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    tasks: Vec<Arc<TaskStats>>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(Shared { metrics, tasks });
    let listener = bind(addr).await?;
    tracing::info!(%addr, "serving metrics and health");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

async fn metrics_text(State(shared): State<Shared>) -> ([(&'static str, &'static str); 1], String) {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
}

/// Not ready while any task has FAILED: the Deployment then shows the sink unavailable.
async fn ready(State(shared): State<Shared>) -> (StatusCode, &'static str) {
    if shared.tasks.iter().any(|t| t.state() == TaskState::Failed) {
        (StatusCode::SERVICE_UNAVAILABLE, "a task has failed")
    } else {
        (StatusCode::OK, "ok")
    }
}
