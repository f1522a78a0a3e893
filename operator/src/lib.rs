//! The adbsink operator: reconciles `AnalyticDBSink` resources into Kafka topics, a consumer
//! group, a credentials Secret and a sink Deployment, and reports what it sees in the status.
//!
//! Pure decisions live in `build` (child objects), `status`/`conditions` (what the status says),
//! `conflict` and the `*_check` functions of `kafka`; `reconcile` strings them together with
//! the I/O of `apply`, `dereference` and `kafka`.

pub mod apply;
pub mod build;
pub mod conditions;
pub mod conflict;
pub mod context;
pub mod controller;
pub mod dereference;
pub mod error;
pub mod kafka;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod server;
pub mod status;
pub mod sweep;

pub use context::{Config, Context};
pub use error::{Error, Result};
pub use reconcile::{error_policy, reconcile};

/// Makes ring the TLS crypto provider of the process's Kubernetes clients. Call before the first
/// client: rustls picks a provider by itself only when exactly one is compiled in, and test
/// builds unify in a second (aws-lc-rs, through kube-fake-client), as any new dependency could.
pub fn install_crypto_provider() {
    // Err: one is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
