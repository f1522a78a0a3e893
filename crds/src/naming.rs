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
