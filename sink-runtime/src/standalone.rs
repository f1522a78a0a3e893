//! Standalone mode: a sink from an AnalyticDBSink manifest, without Kubernetes. The manifest is
//! validated with the same rules as the CRD, the internal topics and group are created (Auto)
//! or checked (Manual) exactly as the operator does, then the sink runs.

use std::path::Path;
use std::time::Duration;

use adbsink_crd::{AnalyticDBSink, InternalTopic, ResourceCreation, validate};
use tracing::info;

use crate::database::DatabaseSettings;
use crate::error::{Error, Result};
use crate::kafka::KafkaConnection;
use crate::provision::{GroupState, Provisioner};
use crate::records::ConfigRecord;
use crate::secret::Secret;
use crate::sink::SinkConfig;

/// Where credentials that are not in the manifest come from.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Database password (`ADBSINK_DB_PASSWORD` or `--password-file`).
    pub password: Option<Secret>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<Secret>,
    /// PEM file with the broker's CA.
    pub kafka_ca_file: Option<String>,
    /// PEM file with the database's CA.
    pub db_ca_file: Option<String>,
}

/// Reads and validates a manifest and resolves its credentials into a runnable config.
pub fn load(path: &Path, credentials: Credentials) -> Result<SinkConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    let sink = adbsink_crd::from_yaml(&text)?;
    config_from(&sink, credentials)
}

pub fn config_from(sink: &AnalyticDBSink, credentials: Credentials) -> Result<SinkConfig> {
    // A password given outside the manifest stands in for the one the API requires in it.
    let mut checked = sink.clone();
    let destination = &mut checked.spec.destination;
    if destination.password.is_none() && destination.password_secret_ref.is_none() {
        destination.password = credentials
            .password
            .as_ref()
            .map(|p| p.expose().to_string());
    }
    validate(&checked)?;
    let name = sink.metadata.name.clone().unwrap_or_default();
    let spec = &sink.spec;
    let password = match (&spec.destination.password, credentials.password) {
        (Some(inline), _) => Secret::new(inline.clone()),
        (None, Some(password)) => password,
        (None, None) => {
            return Err(Error::Config(
                "the manifest references a Secret for the database password, which standalone \
                 mode cannot read: set ADBSINK_DB_PASSWORD or pass --password-file"
                    .into(),
            ));
        }
    };
    let sasl = match (
        &spec.source.sasl,
        credentials.sasl_username,
        credentials.sasl_password,
    ) {
        (None, _, _) => None,
        (Some(_), Some(user), Some(pass)) => Some((user, pass)),
        (Some(_), _, _) => {
            return Err(Error::Config(
                "spec.source.sasl is set: provide ADBSINK_SASL_USERNAME and ADBSINK_SASL_PASSWORD"
                    .into(),
            ));
        }
    };
    let ca_pem = credentials
        .kafka_ca_file
        .map(|f| {
            std::fs::read_to_string(&f).map_err(|e| Error::Config(format!("cannot read {f}: {e}")))
        })
        .transpose()?;
    let mut spec = spec.clone();
    spec.destination.password = None;
    Ok(SinkConfig {
        kafka: KafkaConnection::from_source(&spec.source, sasl, ca_pem),
        database: DatabaseSettings {
            destination: spec.destination.clone(),
            username: spec.destination.username.clone(),
            password,
            ca_file: credentials.db_ca_file,
        },
        threads: spec.source.concurrency,
        task_prefix: "standalone".into(),
        consumer_properties: Vec::new(),
        http_addr: None,
        status_period: Duration::from_secs(10),
        name,
        spec,
    })
}

/// Creates (Auto) or checks (Manual) the internal topics and the consumer group, and publishes
/// the effective configuration. Fails naming every missing or misconfigured resource.
pub async fn provision(config: &SinkConfig) -> Result<()> {
    let provisioner = Provisioner::new(&config.kafka)?;
    let runtime = &config.spec.runtime;
    let topics = InternalTopic::resolve_all(&config.name, runtime);
    let report = provisioner
        .ensure_topics(
            &topics,
            runtime.replication_factor,
            runtime.resource_creation,
            &config.spec.source.topic,
        )
        .await?;
    for created in &report.created {
        info!(topic = %created, "created internal topic");
    }
    if !report.problems.is_empty() {
        let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        return Err(Error::NotReady(format!(
            "internal topics: {}",
            problems.join("; ")
        )));
    }
    let group = runtime
        .consumer_group
        .clone()
        .unwrap_or_else(|| adbsink_crd::default_consumer_group(&config.name));
    let state = provisioner
        .ensure_group(
            &group,
            &config.spec.source.topic,
            config.spec.source.initial_offset,
            runtime.resource_creation,
        )
        .await?;
    match state {
        GroupState::Missing => {
            return Err(Error::NotReady(format!(
                "consumer group {group} does not exist (resourceCreation is Manual)"
            )));
        }
        GroupState::Created => info!(%group, "created consumer group"),
        GroupState::Exists => {}
    }
    debug_assert!(
        runtime.resource_creation == ResourceCreation::Auto || state == GroupState::Exists
    );
    let config_topic =
        InternalTopic::resolve(adbsink_crd::TopicRole::Config, &config.name, runtime);
    provisioner
        .publish(
            &config_topic.name,
            &config.name,
            &ConfigRecord::new(&config.name, &config.spec),
        )
        .await
}
