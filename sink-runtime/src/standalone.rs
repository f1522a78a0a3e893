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
    // In a cluster a paused sink has no pods; run from its file, it must not consume either.
    if sink.spec.paused {
        return Err(Error::Config(format!(
            "{}: spec.paused is true, so the sink does not run; set it to false to run it",
            path.display()
        )));
    }
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
    unreadable_ca(
        "spec.source.tls",
        spec.source
            .tls
            .as_ref()
            .is_some_and(|tls| tls.ca_secret_ref.is_some() || tls.ca_config_map_ref.is_some()),
        credentials.kafka_ca_file.is_some(),
        "--kafka-ca-file",
    )?;
    unreadable_ca(
        "spec.destination.tls",
        spec.destination
            .tls
            .as_ref()
            .is_some_and(|tls| tls.ca_secret_ref.is_some()),
        credentials.db_ca_file.is_some(),
        "--db-ca-file",
    )?;
    // Given for this run, it beats the one written in the file, as a flag beats a config file.
    let password = match (&spec.destination.password, credentials.password) {
        (Some(_), Some(password)) => {
            info!(
                "database password from ADBSINK_DB_PASSWORD or --password-file, not the manifest"
            );
            password
        }
        (Some(inline), None) => Secret::new(inline.clone()),
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

/// A CA the manifest keeps in a Secret or ConfigMap, which standalone mode cannot read: without
/// its file, TLS would fall back to the system's trust store and fail on a private CA with a
/// handshake error that does not say why.
fn unreadable_ca(field: &str, referenced: bool, file_given: bool, flag: &str) -> Result<()> {
    if referenced && !file_given {
        return Err(Error::Config(format!(
            "{field} references a CA in a Secret or ConfigMap, which standalone mode cannot \
             read: pass the CA's PEM file with {flag}"
        )));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(extra_source: &str, extra_destination: &str) -> AnalyticDBSink {
        adbsink_crd::from_yaml(&format!(
            r#"
apiVersion: adbsink.io/v1alpha1
kind: AnalyticDBSink
metadata: {{name: s}}
spec:
  source: {{bootstrapServers: "b:9092", topic: t{extra_source}}}
  destination: {{instanceType: AnalyticDBForPostgreSQL, host: h, database: d, table: t, username: u, password: inline{extra_destination}}}
"#
        ))
        .expect("sink")
    }

    fn error(result: Result<SinkConfig>) -> String {
        match result {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_ca_kept_in_the_cluster_needs_its_file() {
        let kafka = sink(", tls: {caSecretRef: {name: ca, key: ca.pem}}", "");
        let message = error(config_from(&kafka, Credentials::default()));
        assert!(
            message.contains("spec.source.tls") && message.contains("--kafka-ca-file"),
            "{message}"
        );
        let pem = std::env::temp_dir().join(format!("adbsink-ca-{}.pem", std::process::id()));
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").expect("write");
        let given = Credentials {
            kafka_ca_file: Some(pem.display().to_string()),
            ..Credentials::default()
        };
        let config = config_from(&kafka, given).expect("with the file");
        assert!(config.kafka.ca_pem.is_some());
        let _ = std::fs::remove_file(pem);

        let db = sink(
            "",
            ", tls: {mode: VerifyFull, caSecretRef: {name: ca, key: ca.pem}}",
        );
        let message = error(config_from(&db, Credentials::default()));
        assert!(
            message.contains("spec.destination.tls") && message.contains("--db-ca-file"),
            "{message}"
        );
    }

    #[test]
    fn a_password_given_for_the_run_beats_the_manifests() {
        let given = Credentials {
            password: Some(Secret::new("rotated")),
            ..Credentials::default()
        };
        let config = config_from(&sink("", ""), given).expect("config");
        assert_eq!(config.database.password.expose(), "rotated");
        let config = config_from(&sink("", ""), Credentials::default()).expect("config");
        assert_eq!(config.database.password.expose(), "inline");
    }

    #[test]
    fn a_paused_manifest_does_not_run() {
        let file = std::env::temp_dir().join(format!("adbsink-paused-{}.yaml", std::process::id()));
        let mut paused = sink("", "");
        paused.spec.paused = true;
        std::fs::write(&file, serde_yaml::to_string(&paused).expect("yaml")).expect("write");
        let message = error(load(&file, Credentials::default()));
        let _ = std::fs::remove_file(&file);
        assert!(message.contains("spec.paused is true"), "{message}");
    }
}
