//! MySQL Insert through `LOAD DATA LOCAL INFILE`, the rows streamed from memory: the server
//! parses a load's rows far faster than a multi-row INSERT's bound parameters
//! (docs/performance.md). sqlx cannot answer the server's request for the file, so loads go
//! through `mysql_async`, which can; everything else stays on sqlx.
//!
//! With `LOCAL`, MySQL and MariaDB turn every data error into a warning, even in strict mode: a
//! bad value is coerced (`'abc'` into an INT becomes 0), a duplicate key is skipped. So a load
//! counts only if it reports no warning and affected every row; anything else is rolled back
//! and the caller writes the same rows with INSERT, which refuses each bad row exactly as
//! before (`isolate.rs`). A load is only ever faster, never different.
//!
//! AnalyticDB for MySQL documents its loads as not atomic: there a load that warns may leave
//! some rows applied, and the INSERT that follows writes them again, as a replay after a crash
//! would (README, "Delivery guarantees").

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, Opts, OptsBuilder, PoolConstraints, PoolOpts, SslOpts};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tracing::{info, warn};

use adbsink_crd::DatabaseTlsMode;

use crate::database::DatabaseSettings;
use crate::decode::Row;
use crate::metrics::OutcomeLabel;
use crate::table::Table;

/// What became of a load: the caller writes the rows another way unless it is `Loaded`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Loaded,
    /// The server coerced or skipped something (a bad value, a duplicate key): rolled back.
    Warned,
    /// The load did not run or failed (connection, TLS, a server error): rolled back, and loads
    /// rest for a while.
    Failed(String),
    /// Loads are off: the server refuses `LOCAL INFILE`, or they rest after a failure.
    Off,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Self::Loaded => "loaded",
            Self::Warned => "warned",
            Self::Failed(_) => "failed",
            Self::Off => "off",
        }
    }
}

/// How long loads rest after one failed for a reason other than the data.
const REST: Duration = Duration::from_secs(60);
/// Bounds getting a connection, as sqlx's acquire timeout does.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Data goes in packets of this size: well under any server's `max_allowed_packet`.
const CHUNK: usize = 64 << 10;
/// The server does not take `LOCAL INFILE`: 1148 (not allowed with this version, i.e.
/// `local_infile=OFF`), 3948 and 4166 (local data disabled on one side).
const REFUSED: [u16; 3] = [1148, 3948, 4166];

pub struct Loader {
    state: Mutex<State>,
    outcomes: Family<OutcomeLabel, Counter>,
}

struct State {
    pool: Option<mysql_async::Pool>,
    opts: Opts,
    /// `tls` left unset: TLS if the server offers it (sqlx's `Preferred`), so a server without
    /// it gets a plain connection on the second try.
    preferred: bool,
    /// Loads are off until then; `None` with `off_for_good` once the server refused them.
    rest_until: Option<Instant>,
    off_for_good: bool,
}

// Opts holds the password.
impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Loader { .. }")
    }
}

impl Loader {
    pub fn new(settings: &DatabaseSettings, max_connections: u32) -> Self {
        let dest = &settings.destination;
        let mode = dest.tls.as_ref().map(|t| t.mode);
        let ssl = match mode {
            // Like sqlx's Preferred and Required: encrypted, the certificate not checked.
            None | Some(DatabaseTlsMode::Require) => Some(
                SslOpts::default()
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ),
            Some(DatabaseTlsMode::VerifyCa) => {
                Some(with_ca(SslOpts::default(), settings).with_danger_skip_domain_validation(true))
            }
            Some(DatabaseTlsMode::VerifyFull) => Some(with_ca(SslOpts::default(), settings)),
        };
        let opts = OptsBuilder::default()
            .ip_or_hostname(dest.host.clone())
            .tcp_port(dest.port_or_default())
            .db_name(Some(dest.database.clone()))
            .user(Some(settings.username.clone()))
            .pass(Some(settings.password.expose().to_string()))
            .prefer_socket(false)
            .ssl_opts(ssl)
            // The session sqlx sets up for the INSERT path: values read the same either way.
            .init(vec![
                "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'), \
                 time_zone = '+00:00', NAMES utf8mb4",
            ])
            .pool_opts(PoolOpts::default().with_constraints(
                PoolConstraints::new(0, max_connections.max(1) as usize).unwrap_or_default(),
            ));
        Self {
            state: Mutex::new(State {
                pool: None,
                opts: opts.into(),
                preferred: mode.is_none(),
                rest_until: None,
                off_for_good: false,
            }),
            outcomes: Family::default(),
        }
    }

    /// Counts outcomes into `family` (`adbsink_mysql_loads_total`).
    pub fn count_into(&mut self, family: Family<OutcomeLabel, Counter>) {
        self.outcomes = family;
    }

    /// Loads `rows` into `table` in one transaction, grouped by the columns they set.
    pub async fn load(&self, table: &Table, rows: &[&Row<'_>]) -> Outcome {
        let outcome = self.try_load(table, rows).await;
        self.outcomes
            .get_or_create(&OutcomeLabel {
                outcome: outcome.label().to_string(),
            })
            .inc();
        outcome
    }

    async fn try_load(&self, table: &Table, rows: &[&Row<'_>]) -> Outcome {
        loop {
            let Some(pool) = self.pool() else {
                return Outcome::Off;
            };
            match load_in_transaction(&pool, table, rows).await {
                // At most once: `without_tls` turns TLS off for good.
                Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer))
                    if self.without_tls() => {}
                Err(e) => return self.failed(e),
                Ok(outcome) => return outcome,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pool, unless loads are off or resting.
    fn pool(&self) -> Option<mysql_async::Pool> {
        let mut state = self.lock();
        if state.off_for_good || state.rest_until.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        state.rest_until = None;
        let opts = state.opts.clone();
        Some(
            state
                .pool
                .get_or_insert_with(|| mysql_async::Pool::new(opts))
                .clone(),
        )
    }

    /// The server has no TLS and none was asked for: plain connections from now on.
    fn without_tls(&self) -> bool {
        let mut state = self.lock();
        if !state.preferred {
            return false;
        }
        state.preferred = false;
        state.opts = OptsBuilder::from_opts(state.opts.clone())
            .ssl_opts(None::<SslOpts>)
            .into();
        state.pool = None;
        true
    }

    fn failed(&self, error: mysql_async::Error) -> Outcome {
        let mut state = self.lock();
        let code = match &error {
            mysql_async::Error::Server(e) => Some(e.code),
            _ => None,
        };
        // A row larger than the server's max_allowed_packet: the INSERT path refuses it.
        if matches!(code, Some(1153 | 1301)) {
            return Outcome::Warned;
        }
        if code.is_some_and(|c| REFUSED.contains(&c)) {
            if !state.off_for_good {
                info!(error = %error, "the database refuses LOAD DATA LOCAL INFILE: writing with INSERT");
            }
            state.off_for_good = true;
        } else {
            warn!(error = %error, rest_seconds = REST.as_secs(), "LOAD DATA failed: writing with INSERT meanwhile");
            state.rest_until = Some(Instant::now() + REST);
        }
        Outcome::Failed(error.to_string())
    }

    pub async fn close(&self) {
        let pool = self.lock().pool.take();
        if let Some(pool) = pool {
            let _ = pool.disconnect().await;
        }
    }
}

fn with_ca(ssl: SslOpts, settings: &DatabaseSettings) -> SslOpts {
    match &settings.ca_file {
        Some(ca) => ssl
            .with_root_certs(vec![std::path::PathBuf::from(ca).into()])
            .with_disable_built_in_roots(true),
        None => ssl,
    }
}

async fn load_in_transaction(
    pool: &mysql_async::Pool,
    table: &Table,
    rows: &[&Row<'_>],
) -> Result<Outcome, mysql_async::Error> {
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, pool.get_conn())
        .await
        .map_err(|_| mysql_async::Error::Other("timed out connecting to the database".into()))??;
    conn.query_drop("START TRANSACTION").await?;
    match load_groups(&mut conn, table, rows).await {
        Ok(Outcome::Loaded) => {
            conn.query_drop("COMMIT").await?;
            Ok(Outcome::Loaded)
        }
        other => {
            // A connection that cannot roll back is dropped, which rolls back on the server.
            let _ = conn.query_drop("ROLLBACK").await;
            other
        }
    }
}

async fn load_groups(
    conn: &mut Conn,
    table: &Table,
    rows: &[&Row<'_>],
) -> Result<Outcome, mysql_async::Error> {
    for (sql, group) in crate::dialect::load_groups(table, rows) {
        let chunks = chunks(&group);
        conn.set_infile_handler(async move {
            Ok(futures::stream::iter(chunks.into_iter().map(Ok)).boxed())
        });
        conn.query_drop(sql).await?;
        if conn.get_warnings() > 0 || conn.affected_rows() != group.len() as u64 {
            return Ok(Outcome::Warned);
        }
    }
    Ok(Outcome::Loaded)
}

/// The rows as the load reads them (the COPY text format: tab-separated, `\N` for NULL,
/// backslash escapes), in packets of about [`CHUNK`].
fn chunks(rows: &[&Row<'_>]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut buffer = Vec::with_capacity(CHUNK + 4096);
    for row in rows {
        crate::dialect::copy_line(row, &mut buffer);
        if buffer.len() >= CHUNK {
            out.push(Bytes::from(std::mem::replace(
                &mut buffer,
                Vec::with_capacity(CHUNK + 4096),
            )));
        }
    }
    if !buffer.is_empty() {
        out.push(Bytes::from(buffer));
    }
    out
}
