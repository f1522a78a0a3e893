//! The Secret `<name>-credentials`: the one place sink pods read credentials from.

use std::collections::BTreeMap;

use adbsink_crd::{
    AnalyticDBSink, SECRET_KEY_DB_PASSWORD, SECRET_KEY_DB_USERNAME, SECRET_KEY_SASL_PASSWORD,
    SECRET_KEY_SASL_USERNAME, credentials_secret_name,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::build::meta::child_meta;
use crate::dereference::Resolved;
use crate::error::Result;

/// The credentials Secret with the database username and password, plus the SASL username and
/// password when the source uses SASL.
pub fn credentials_secret(sink: &AnalyticDBSink, resolved: &Resolved) -> Result<Secret> {
    let mut data = BTreeMap::from([
        (
            SECRET_KEY_DB_USERNAME.to_string(),
            bytes(&sink.spec.destination.username),
        ),
        (
            SECRET_KEY_DB_PASSWORD.to_string(),
            bytes(resolved.password.expose()),
        ),
    ]);
    if let Some((username, password)) = &resolved.sasl {
        data.insert(SECRET_KEY_SASL_USERNAME.to_string(), bytes(username));
        data.insert(
            SECRET_KEY_SASL_PASSWORD.to_string(),
            bytes(password.expose()),
        );
    }
    Ok(Secret {
        metadata: child_meta(sink, credentials_secret_name(&sink.name_any()))?,
        type_: Some("Opaque".to_string()),
        data: Some(data),
        ..Secret::default()
    })
}

/// The credentials Secret as the password move writes it, before anything else is resolved:
/// the database username and the moved password. The full Secret follows in the same reconcile.
pub fn moved_password_secret(sink: &AnalyticDBSink, password: &str) -> Result<Secret> {
    Ok(Secret {
        metadata: child_meta(sink, credentials_secret_name(&sink.name_any()))?,
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([
            (
                SECRET_KEY_DB_USERNAME.to_string(),
                bytes(&sink.spec.destination.username),
            ),
            (SECRET_KEY_DB_PASSWORD.to_string(), bytes(password)),
        ])),
        ..Secret::default()
    })
}

/// Whether the sink created this Secret (it is its controller). Anything else of that name is
/// the user's, and is never taken over: the garbage collector would delete it with the sink.
pub fn is_ours(secret: &Secret, sink: &AnalyticDBSink) -> bool {
    let uid = sink.metadata.uid.as_deref();
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
}

fn bytes(value: &str) -> ByteString {
    ByteString(value.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::sink;
    use adbsink_runtime::Secret as Credential;

    fn string(secret: &Secret, key: &str) -> Option<String> {
        secret
            .data
            .as_ref()?
            .get(key)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    }

    #[test]
    fn holds_database_credentials_and_is_owned_by_the_sink() {
        let sink = sink("orders");
        let resolved = Resolved {
            password: Credential::new("hunter2"),
            ..Resolved::default()
        };
        let secret = credentials_secret(&sink, &resolved).expect("secret");
        assert_eq!(secret.metadata.name.as_deref(), Some("orders-credentials"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(
            secret
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("adbsink.io/sink")),
            Some(&"orders".to_string())
        );
        let owner = &secret.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.kind, "AnalyticDBSink");
        assert_eq!(owner.name, "orders");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(string(&secret, "username").as_deref(), Some("writer"));
        assert_eq!(string(&secret, "password").as_deref(), Some("hunter2"));
        assert_eq!(secret.data.as_ref().map(BTreeMap::len), Some(2));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    }

    #[test]
    fn carries_sasl_credentials_when_configured() {
        let sink = sink("orders");
        let resolved = Resolved {
            password: Credential::new("db"),
            sasl: Some(("kafka-user".into(), Credential::new("kafka-pass"))),
            ..Resolved::default()
        };
        let secret = credentials_secret(&sink, &resolved).expect("secret");
        assert_eq!(
            string(&secret, "sasl-username").as_deref(),
            Some("kafka-user")
        );
        assert_eq!(
            string(&secret, "sasl-password").as_deref(),
            Some("kafka-pass")
        );
    }
}
