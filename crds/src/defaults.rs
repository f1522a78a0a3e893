//! Every default of the API, in one place. serde calls these when a field is absent and schemars
//! copies their values into the CRD schema, so `kubectl get -o yaml` and standalone mode agree.

/// Consumer thread counts the managed product offers.
pub const ALLOWED_CONCURRENCY: [u32; 5] = [1, 2, 3, 6, 12];
/// Longest sink name the managed product accepts.
pub const MAX_NAME_LEN: usize = 48;
/// AnalyticDB for MySQL rejects statements above this size (`max_allowed_packet` ceiling).
pub const MYSQL_MAX_BATCH_BYTES: u64 = 16 * 1024 * 1024;
/// Upper bound for any dialect: two batches are held in memory per consumer thread.
pub const MAX_BATCH_BYTES: u64 = 64 * 1024 * 1024;
pub const MIN_BATCH_BYTES: u64 = 1024;
pub const MAX_BATCH_ROWS: u32 = 100_000;
pub const MAX_LINGER_MS: u64 = 60_000;
pub const MAX_THREADS_PER_REPLICA: u32 = 12;
/// Image the operator runs sink pods with unless `spec.sinkTemplate.image` says otherwise.
pub const DEFAULT_SINK_IMAGE: &str = "ghcr.io/adbsink/adbsink-runtime:0.1.0";

pub fn default_concurrency() -> u32 {
    6
}

pub fn default_threads_per_replica() -> u32 {
    3
}

pub fn default_max_batch_rows() -> u32 {
    5_000
}

pub fn default_max_batch_bytes() -> u64 {
    4 * 1024 * 1024
}

pub fn default_linger_ms() -> u64 {
    500
}

pub fn default_sasl_username_key() -> String {
    "username".into()
}

pub fn default_password_key() -> String {
    "password".into()
}

pub fn default_ca_key() -> String {
    "ca.crt".into()
}

pub const MYSQL_DEFAULT_PORT: u16 = 3306;
pub const POSTGRES_DEFAULT_PORT: u16 = 5432;
