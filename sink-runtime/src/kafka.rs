//! Kafka client settings built from the sink's source spec and its resolved credentials.

use adbsink_crd::{SaslMechanism, SourceSpec};
use rdkafka::ClientConfig;

use crate::secret::Secret;

/// How to reach and authenticate to the brokers, with credentials already resolved.
#[derive(Debug, Clone, Default)]
pub struct KafkaConnection {
    pub bootstrap_servers: String,
    pub sasl: Option<SaslCredentials>,
    /// TLS on; `ca_pem` None means the system trust store.
    pub tls: bool,
    pub ca_pem: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

impl KafkaConnection {
    /// The connection a source spec describes; `sasl` and `ca_pem` come from wherever the
    /// caller keeps credentials (environment, Secret, file).
    pub fn from_source(
        source: &SourceSpec,
        sasl: Option<(String, Secret)>,
        ca_pem: Option<String>,
    ) -> Self {
        Self {
            bootstrap_servers: source.bootstrap_servers.clone(),
            sasl: source
                .sasl
                .as_ref()
                .zip(sasl)
                .map(|(spec, (username, password))| SaslCredentials {
                    mechanism: spec.mechanism,
                    username,
                    password,
                }),
            tls: source.tls.is_some(),
            ca_pem,
        }
    }

    /// Settings shared by every client of the sink (consumer, producer, admin).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        let protocol = match (self.sasl.is_some(), self.tls) {
            (false, false) => "plaintext",
            (false, true) => "ssl",
            (true, false) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        config.set("security.protocol", protocol);
        if let Some(sasl) = &self.sasl {
            config
                .set("sasl.mechanism", sasl.mechanism.as_str())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", sasl.password.expose());
        }
        if let Some(ca) = &self.ca_pem {
            config.set("ssl.ca.pem", ca);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(yaml: &str) -> SourceSpec {
        serde_yaml::from_str(yaml).expect("source")
    }

    #[test]
    fn plaintext_without_auth() {
        let conn = KafkaConnection::from_source(
            &source("{bootstrapServers: 'b:9092', topic: t}"),
            None,
            None,
        );
        let config = conn.client_config();
        assert_eq!(config.get("security.protocol"), Some("plaintext"));
        assert_eq!(config.get("sasl.username"), None);
    }

    #[test]
    fn sasl_over_tls_with_ca() {
        let spec = source(
            "{bootstrapServers: 'b:9093', topic: t, tls: {}, sasl: {mechanism: SCRAM-SHA-512, credentialsSecretRef: {name: s}}}",
        );
        let conn = KafkaConnection::from_source(
            &spec,
            Some(("u".into(), Secret::new("p"))),
            Some("PEM".into()),
        );
        let config = conn.client_config();
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.password"), Some("p"));
        assert_eq!(config.get("ssl.ca.pem"), Some("PEM"));
        assert!(
            !format!("{conn:?}").contains("\"p\""),
            "password hidden from Debug"
        );
    }
}
