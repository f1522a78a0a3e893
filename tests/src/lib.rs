//! Shared helpers for the end-to-end tests: where the local services are (as printed by
//! `scripts/dev-services.sh env`), unique names so tests never share state, and polling with
//! deadlines instead of sleeps.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Connection settings of the local services.
#[derive(Debug, Clone)]
pub struct Services {
    pub pg_url: String,
    pub mysql_url: String,
    pub kafka_bootstrap: String,
    /// `scripts/dev-services.sh`, for tests that stop and start a service.
    pub dev_services: String,
}

impl Services {
    /// Reads the settings; panics with the command to run when the services are not configured,
    /// because a silently skipped integration test proves nothing.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: start the services with `scripts/dev-services.sh up` \
                     and `eval \"$(scripts/dev-services.sh env)\"`, or run `scripts/test.sh`"
                )
            })
        };
        Self {
            pg_url: var("ADBSINK_PG_URL"),
            mysql_url: var("ADBSINK_MYSQL_URL"),
            kafka_bootstrap: var("ADBSINK_KAFKA_BOOTSTRAP"),
            dev_services: var("ADBSINK_DEV_SERVICES"),
        }
    }
}

/// A name unique to this test process and call, safe as a topic, table or sink name.
pub fn unique(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `check` until it returns `Some`, or panics after `limit` saying what was awaited.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
