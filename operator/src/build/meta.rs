//! Metadata every child object of a sink carries: name, namespace, labels, controller reference.

use std::collections::BTreeMap;

use adbsink_crd::{AnalyticDBSink, LABEL_SINK};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::error::{Error, Result};

/// Field manager of every server-side apply the operator makes.
pub const MANAGER: &str = "adbsink-operator";
pub const APP_NAME: &str = "adbsink-sink";

/// Labels on every child: the `adbsink.io/sink` label is what orphans and watches are found by.
pub fn labels(sink: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
        ("app.kubernetes.io/instance".to_string(), sink.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGER.to_string(),
        ),
        (LABEL_SINK.to_string(), sink.to_string()),
    ])
}

/// Metadata of a child named `name`, owned (as controller) by the sink so it is garbage
/// collected with it. Owner deletion is blocked, so a foreground deletion of the sink
/// (`kubectl delete --cascade=foreground`, Argo CD's default) finishes only once the children
/// are gone.
pub fn child_meta(sink: &AnalyticDBSink, name: String) -> Result<ObjectMeta> {
    let owner = sink
        .controller_owner_ref(&())
        .map(|owner| OwnerReference {
            block_owner_deletion: Some(true),
            ..owner
        })
        .ok_or(Error::MissingField("metadata.uid"))?;
    Ok(ObjectMeta {
        name: Some(name),
        namespace: sink.namespace(),
        labels: Some(labels(&sink.name_any())),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    })
}
