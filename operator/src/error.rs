/// Everything a reconcile can fail with. User-actionable problems (invalid spec, missing Secret,
/// missing topic) are not errors: they end up as conditions, and the reconcile succeeds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] adbsink_runtime::Error),
    #[error("serialization: {0}")]
    Json(#[from] serde_json::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("object has no {0}")]
    MissingField(&'static str),
    #[error("cleanup: {0}")]
    Cleanup(String),
}

impl Error {
    /// Label of the `adbsink_operator_reconcile_errors_total` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Kafka(_) => "kafka",
            Self::Json(_) => "serialization",
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "finalizer",
            },
            Self::MissingField(_) => "invalid_object",
            Self::Cleanup(_) => "cleanup",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalizer_errors_are_labelled_by_their_cause() {
        let inner = Error::Kafka(adbsink_runtime::Error::NotReady("x".into()));
        let wrapped = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::CleanupFailed(
            inner,
        )));
        assert_eq!(wrapped.metric_label(), "kafka");
        assert_eq!(Error::MissingField("name").metric_label(), "invalid_object");
    }
}
