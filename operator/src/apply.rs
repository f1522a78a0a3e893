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

/// Server-side applies the moved inline password into the credentials Secret, under a field
/// manager of its own: the Secret's other keys stay the main manager's.
pub async fn apply_moved_password(
    api: &Api<k8s_openapi::api::core::v1::Secret>,
    secret: &k8s_openapi::api::core::v1::Secret,
) -> Result<()> {
    let name = secret
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let params = PatchParams::apply(PASSWORD_MOVE_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(secret)).await?;
    Ok(())
}

/// The field manager of the password move.
pub const PASSWORD_MOVE_MANAGER: &str = "adbsink-operator-password-move";

/// Server-side applies the whole status of a sink, if the sink is still at the version given.
pub async fn status(
    api: &Api<AnalyticDBSink>,
    sink: &AnalyticDBSink,
    status: &AnalyticDBSinkStatus,
) -> Result<AnalyticDBSink> {
    // The resourceVersion makes a write computed from a stale copy (the controller's store
    // lags behind the previous reconcile's own write) fail with 409 instead of undoing it.
    let patch = json!({
        "apiVersion": AnalyticDBSink::api_version(&()),
        "kind": AnalyticDBSink::kind(&()),
        "metadata": {"resourceVersion": sink.resource_version()},
        "status": status,
    });
    Ok(api
        .patch_status(&sink.name_any(), &params(), &Patch::Apply(&patch))
        .await?)
}
