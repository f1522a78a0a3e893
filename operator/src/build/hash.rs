//! The pod-template hash: any change to the configuration or to a credential rolls the pods.

use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};

use crate::dereference::Resolved;

/// sha256 over the configuration JSON, the credentials Secret's data and the CA bundles. Each
/// part is length-prefixed so moving bytes between parts changes the hash.
pub fn config_hash(config_json: &str, credentials: &Secret, resolved: &Resolved) -> String {
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    part(config_json.as_bytes());
    for (key, value) in credentials.data.iter().flatten() {
        part(key.as_bytes());
        part(&value.0);
    }
    for ca in [&resolved.kafka_ca, &resolved.db_ca] {
        part(ca.as_deref().unwrap_or_default().as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::credentials::credentials_secret;
    use crate::build::testing::sink;
    use adbsink_runtime::Secret as Credential;

    fn hash(password: &str, config: &str, ca: Option<&str>) -> String {
        let resolved = Resolved {
            password: Credential::new(password),
            kafka_ca: ca.map(str::to_string),
            ..Resolved::default()
        };
        let secret = credentials_secret(&sink("s"), &resolved).expect("secret");
        config_hash(config, &secret, &resolved)
    }

    #[test]
    fn changes_with_password_config_or_ca_and_only_then() {
        let base = hash("one", "{}", None);
        assert_eq!(base.len(), 64);
        assert_eq!(base, hash("one", "{}", None));
        assert_ne!(base, hash("two", "{}", None), "password rotation");
        assert_ne!(base, hash("one", "{\"a\":1}", None), "config change");
        assert_ne!(base, hash("one", "{}", Some("PEM")), "CA change");
    }
}
