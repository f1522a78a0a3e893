//! Names of everything derived from a sink. Kept together so the operator, the runtime and the
//! kubectl plugin can never disagree about which topic, group or object belongs to a sink.

/// Consumer group the managed product uses for a connector.
pub fn default_consumer_group(sink: &str) -> String {
    format!("connect-{sink}")
}

/// Secret the operator creates to hold the sink's credentials.
pub fn credentials_secret_name(sink: &str) -> String {
    format!("{sink}-credentials")
}

/// Deployment running the sink's consumer threads.
pub fn sink_deployment_name(sink: &str) -> String {
    format!("{sink}-sink")
}

/// Key of the database password inside the credentials Secret.
pub const SECRET_KEY_DB_USERNAME: &str = "username";
pub const SECRET_KEY_DB_PASSWORD: &str = "password";
pub const SECRET_KEY_SASL_USERNAME: &str = "sasl-username";
pub const SECRET_KEY_SASL_PASSWORD: &str = "sasl-password";

/// Label put on every object created for a sink; orphans are found by it.
pub const LABEL_SINK: &str = "adbsink.io/sink";
/// Annotation whose new value asks the operator to roll the sink pods once.
pub const ANNOTATION_RESTART: &str = "adbsink.io/restart";
/// Finalizer that lets the operator apply the deletion policy before the CR disappears.
pub const FINALIZER: &str = "adbsink.io/cleanup";

/// Pod-template annotation holding a hash of the sink's configuration and credentials: a new
/// value (config change, password rotation) rolls the sink pods.
pub const ANNOTATION_CONFIG_HASH: &str = "adbsink.io/config-hash";

// The contract between the sink Deployment the operator builds and the runtime binary it runs:
// environment variables, mount paths and the health port. Both sides use these names.
pub const ENV_SINK_NAME: &str = "ADBSINK_SINK_NAME";
/// JSON of the runtime's `ConfigRecord` (no credentials in it).
pub const ENV_CONFIG: &str = "ADBSINK_CONFIG";
/// Consumer threads this pod runs.
pub const ENV_THREADS: &str = "ADBSINK_THREADS";
/// Prefix of the pod's task ids (the pod name).
pub const ENV_TASK_PREFIX: &str = "ADBSINK_TASK_PREFIX";
pub const ENV_HTTP_ADDR: &str = "ADBSINK_HTTP_ADDR";
pub const ENV_LOG_FORMAT: &str = "ADBSINK_LOG_FORMAT";
pub const ENV_DB_USERNAME: &str = "ADBSINK_DB_USERNAME";
pub const ENV_DB_PASSWORD: &str = "ADBSINK_DB_PASSWORD";
pub const ENV_SASL_USERNAME: &str = "ADBSINK_SASL_USERNAME";
pub const ENV_SASL_PASSWORD: &str = "ADBSINK_SASL_PASSWORD";
pub const ENV_KAFKA_CA_FILE: &str = "ADBSINK_KAFKA_CA_FILE";
pub const ENV_DB_CA_FILE: &str = "ADBSINK_DB_CA_FILE";
/// Where the Kafka and database CA bundles are mounted in sink pods.
pub const KAFKA_CA_DIR: &str = "/etc/adbsink/kafka-ca";
pub const DB_CA_DIR: &str = "/etc/adbsink/db-ca";
/// Port of the runtime's `/healthz`, `/readyz` and `/metrics`.
pub const SINK_HTTP_PORT: u16 = 8080;
