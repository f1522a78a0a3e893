//! Reads what a sink references by name: the password Secret, the SASL Secret and the CA bundles.
//! A missing object or key is the user's to fix, so it is reported, not raised as an error.

use std::collections::BTreeMap;

use adbsink_crd::{AnalyticDBSink, KeyRef};
use adbsink_runtime::Secret as Credential;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, ResourceExt};

use crate::error::{Error, Result};

/// Everything the sink needs from referenced objects, with values resolved.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub password: Credential,
    pub sasl: Option<(String, Credential)>,
    pub kafka_ca: Option<String>,
    pub db_ca: Option<String>,
}

/// Problems with references, one message per missing object or key (never a value).
pub type Missing = Vec<String>;

/// What the references are read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Running the sink: everything.
    Run,
    /// Deleting its Kafka resources: only what reaches Kafka. The database's Secrets may be gone
    /// already (namespace deletion, `kubectl delete -f` of a file with both).
    Cleanup,
}

/// Reads the referenced objects; `Ok(Err(missing))` when some are absent.
pub async fn resolve(client: &Client, sink: &AnalyticDBSink) -> Result<Result<Resolved, Missing>> {
    resolve_for(client, sink, Purpose::Run).await
}

/// Reads what `purpose` needs of the referenced objects; `Ok(Err(missing))` when some are absent.
pub async fn resolve_for(
    client: &Client,
    sink: &AnalyticDBSink,
    purpose: Purpose,
) -> Result<Result<Resolved, Missing>> {
    let database = purpose == Purpose::Run;
    let namespace = sink
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let mut fetched: BTreeMap<String, Option<BTreeMap<String, Vec<u8>>>> = BTreeMap::new();
    for name in referenced_secrets(sink) {
        let data = secrets.get_opt(&name).await?.map(|s| secret_data(&s));
        fetched.insert(name, data);
    }
    let mut missing = Vec::new();
    let mut lookup =
        |kind: &str, name: &str, key: &str, objects: &BTreeMap<_, Option<_>>| match find(
            kind, objects, name, key,
        ) {
            Ok(v) => Some(v),
            Err(why) => {
                missing.push(why);
                None
            }
        };
    let destination = &sink.spec.destination;
    let password = match (&destination.password, &destination.password_secret_ref) {
        _ if !database => None,
        (Some(inline), _) => Some(inline.clone()),
        (None, Some(r)) => lookup("Secret", &r.name, &r.key, &fetched),
        (None, None) => None,
    };
    let sasl = sink.spec.source.sasl.as_ref().map(|sasl| {
        let r = &sasl.credentials_secret_ref;
        (
            lookup("Secret", &r.name, &r.username_key, &fetched),
            lookup("Secret", &r.name, &r.password_key, &fetched),
        )
    });
    let tls = sink.spec.source.tls.as_ref();
    let kafka_ca = match (
        tls.and_then(|t| t.ca_secret_ref.as_ref()),
        tls.and_then(|t| t.ca_config_map_ref.as_ref()),
    ) {
        (Some(r), _) => lookup("Secret", &r.name, &r.key, &fetched),
        (None, Some(r)) => {
            let data = config_maps
                .get_opt(&r.name)
                .await?
                .map(|c| config_map_data(&c));
            let objects = BTreeMap::from([(r.name.clone(), data)]);
            lookup("ConfigMap", &r.name, &r.key, &objects)
        }
        (None, None) => None,
    };
    let db_ca = db_ca_ref(sink)
        .filter(|_| database)
        .and_then(|r| lookup("Secret", &r.name, &r.key, &fetched));
    if !missing.is_empty() {
        return Ok(Err(missing));
    }
    Ok(Ok(Resolved {
        password: Credential::new(password.unwrap_or_default()),
        sasl: sasl.and_then(|(u, p)| Some((u?, Credential::new(p?)))),
        kafka_ca,
        db_ca,
    }))
}

/// Names of every Secret the sink references, for the Secret watch and for `resolve`.
pub fn referenced_secrets(sink: &AnalyticDBSink) -> Vec<String> {
    let spec = &sink.spec;
    let mut names: Vec<String> = [
        spec.destination
            .password_secret_ref
            .as_ref()
            .map(|r| &r.name),
        spec.source
            .sasl
            .as_ref()
            .map(|s| &s.credentials_secret_ref.name),
        spec.source
            .tls
            .as_ref()
            .and_then(|t| t.ca_secret_ref.as_ref())
            .map(|r| &r.name),
        db_ca_ref(sink).map(|r| &r.name),
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    names.sort();
    names.dedup();
    names
}

fn db_ca_ref(sink: &AnalyticDBSink) -> Option<&KeyRef> {
    sink.spec
        .destination
        .tls
        .as_ref()
        .and_then(|t| t.ca_secret_ref.as_ref())
}

fn find(
    kind: &str,
    objects: &BTreeMap<String, Option<BTreeMap<String, Vec<u8>>>>,
    name: &str,
    key: &str,
) -> Result<String, String> {
    let Some(Some(data)) = objects.get(name) else {
        return Err(format!("{kind} {name:?} not found"));
    };
    data.get(key)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .ok_or_else(|| format!("{kind} {name:?} has no key {key:?}"))
}

fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    // stringData only appears on objects that were never round-tripped through the API server
    // (fixtures), but honour it rather than report a key as missing.
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), v.as_bytes().to_vec());
    }
    out
}

fn config_map_data(config_map: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    config_map
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .chain(
            config_map
                .binary_data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone())),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_object_or_key_without_values() {
        let objects = BTreeMap::from([
            (
                "present".to_string(),
                Some(BTreeMap::from([(
                    "password".to_string(),
                    b"s3cret".to_vec(),
                )])),
            ),
            ("absent".to_string(), None),
        ]);
        assert_eq!(
            find("Secret", &objects, "present", "password").as_deref(),
            Ok("s3cret")
        );
        assert_eq!(
            find("Secret", &objects, "present", "pw"),
            Err("Secret \"present\" has no key \"pw\"".to_string())
        );
        assert_eq!(
            find("Secret", &objects, "absent", "password"),
            Err("Secret \"absent\" not found".to_string())
        );
    }

    #[test]
    fn lists_each_referenced_secret_once() {
        let mut sink = crate::build::testing::sink("s");
        sink.spec.destination.password_secret_ref = Some(KeyRef {
            name: "shared".into(),
            key: "password".into(),
        });
        sink.spec.source.sasl = Some(adbsink_crd::SaslSpec {
            mechanism: adbsink_crd::SaslMechanism::Plain,
            credentials_secret_ref: adbsink_crd::SaslCredentialsRef {
                name: "shared".into(),
                username_key: "u".into(),
                password_key: "p".into(),
            },
        });
        assert_eq!(referenced_secrets(&sink), vec!["shared".to_string()]);
    }
}
