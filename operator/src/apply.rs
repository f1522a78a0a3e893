//! Writes to the API server: server-side apply of children and of the status, one field manager.

use std::fmt::Debug;

use adbsink_crd::{AnalyticDBSink, AnalyticDBSinkStatus};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::build::meta::MANAGER;
use crate::error::{Error, Result};

fn params() -> PatchParams {
    // force: the operator owns these fields; a manual edit is reverted, not a conflict.
    PatchParams::apply(MANAGER).force()
}

/// Server-side applies a child object and returns it as stored.
pub async fn apply<K>(api: &Api<K>, object: &K) -> Result<K>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = object
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    Ok(api.patch(&name, &params(), &Patch::Apply(object)).await?)
}

/// Server-side applies the whole status of a sink.
pub async fn status(
    api: &Api<AnalyticDBSink>,
    sink: &AnalyticDBSink,
    status: &AnalyticDBSinkStatus,
) -> Result<AnalyticDBSink> {
    let patch = json!({
        "apiVersion": AnalyticDBSink::api_version(&()),
        "kind": AnalyticDBSink::kind(&()),
        "status": status,
    });
    Ok(api
        .patch_status(&sink.name_any(), &params(), &Patch::Apply(&patch))
        .await?)
}
