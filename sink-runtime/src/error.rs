use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid sink definition: {0}")]
    Spec(#[from] adbsink_crd::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("kafka {operation} on {resource}: {code}")]
    KafkaAdmin {
        operation: &'static str,
        resource: String,
        code: rdkafka::types::RDKafkaErrorCode,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("destination table {0} not found or has no columns")]
    TableNotFound(String),
    #[error("record encoding: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("internal resources not ready: {0}")]
    NotReady(String),
    #[error("task failed: {0}")]
    TaskFailed(String),
}

impl Error {
    /// A short label for metrics and status reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Spec(_) | Self::Config(_) => "config",
            Self::Kafka(_) | Self::KafkaAdmin { .. } => "kafka",
            Self::Database(_) | Self::TableNotFound(_) => "database",
            Self::Json(_) => "encoding",
            Self::Io(_) => "io",
            Self::NotReady(_) => "not_ready",
            Self::TaskFailed(_) => "task_failed",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
