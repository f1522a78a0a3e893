//! What the operator removes when a feature is turned off: the per-sink NetworkPolicies it made
//! while it ran with `--network-policies`. Turning the option off changes the operator's
//! arguments and so restarts it; sweeping once at start catches exactly that change.

use adbsink_crd::{AnalyticDBSink, LABEL_SINK};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Resource, ResourceExt};

use crate::context::Context;

/// Whether the policy is one a sink controls (made by this operator), not one a user labelled.
pub fn made_by_a_sink(policy: &NetworkPolicy) -> bool {
    policy.owner_references().iter().any(|owner| {
        owner.controller == Some(true)
            && owner.kind == AnalyticDBSink::kind(&())
            && owner.api_version == AnalyticDBSink::api_version(&())
    }) && policy.labels().contains_key(LABEL_SINK)
}

/// Deletes the sinks' NetworkPolicies in the watched namespaces. A failure (RBAC above all) is
/// logged and does not stop the operator: the policies only restrict what sink pods reach.
pub async fn network_policies(ctx: &Context) {
    let apis: Vec<Api<NetworkPolicy>> = if ctx.config.namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        ctx.config
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(ctx.client.clone(), ns))
            .collect()
    };
    for api in apis {
        let listed = match api.list(&ListParams::default().labels(LABEL_SINK)).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list sink NetworkPolicies to remove them (running without --network-policies)");
                continue;
            }
        };
        for policy in listed.items.iter().filter(|p| made_by_a_sink(p)) {
            let namespace = policy.namespace().unwrap_or_default();
            let name = policy.name_any();
            let scoped: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
            match scoped.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(%namespace, %name, "removed a sink NetworkPolicy (running without --network-policies)")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(%namespace, %name, error = %e, "cannot remove a sink NetworkPolicy")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(owner_kind: &str, controller: bool, labelled: bool) -> NetworkPolicy {
        let labels = if labelled {
            json!({LABEL_SINK: "orders"})
        } else {
            json!({})
        };
        serde_json::from_value(json!({
            "metadata": {
                "name": "orders", "namespace": "shop", "labels": labels,
                "ownerReferences": [{
                    "apiVersion": "adbsink.io/v1alpha1", "kind": owner_kind, "name": "orders",
                    "uid": "u1", "controller": controller
                }]
            }
        }))
        .expect("policy")
    }

    #[test]
    fn only_policies_a_sink_controls_are_swept() {
        assert!(made_by_a_sink(&policy("AnalyticDBSink", true, true)));
        assert!(!made_by_a_sink(&policy("AnalyticDBSink", false, true)));
        assert!(!made_by_a_sink(&policy("ConfigMap", true, true)));
        assert!(!made_by_a_sink(&policy("AnalyticDBSink", true, false)));
    }
}
