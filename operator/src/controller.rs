//! Wires `reconcile` into a kube-runtime Controller: the sinks, their children, and the Secrets
//! they reference (a rotated password must roll the pods without waiting for the requeue).

use std::sync::Arc;

use adbsink_crd::{AnalyticDBSink, LABEL_SINK};
use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;

use crate::context::Context;
use crate::dereference::referenced_secrets;
use crate::reconcile::{error_policy, reconcile};

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller for one namespace (`None`: all) until `stop` turns true.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>, mut stop: watch::Receiver<bool>) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let children = watcher::Config::default().labels(LABEL_SINK);
    let controller = Controller::new(
        scoped::<AnalyticDBSink>(&client, ns),
        watcher::Config::default().any_semantic(),
    );
    let store = controller.store();
    let controller = controller
        .owns(scoped::<Deployment>(&client, ns), children.clone())
        .owns(scoped::<Secret>(&client, ns), children.clone())
        .watches(
            scoped::<Secret>(&client, ns),
            watcher::Config::default(),
            move |secret| referencing(&store, &secret),
        );
    let controller = if ctx.config.network_policies {
        controller.owns(scoped::<NetworkPolicy>(&client, ns), children)
    } else {
        controller
    };
    tracing::info!(namespace = ns.unwrap_or("*"), "controller started");
    controller
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((sink, _)) => tracing::debug!(sink = %sink, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
            }
        })
        .await;
    tracing::info!(namespace = ns.unwrap_or("*"), "controller stopped");
}

/// The sinks in the Secret's namespace that reference it by name.
fn referencing(store: &Store<AnalyticDBSink>, secret: &Secret) -> Vec<ObjectRef<AnalyticDBSink>> {
    let name = secret.name_any();
    store
        .state()
        .iter()
        .filter(|sink| sink.namespace() == secret.namespace())
        .filter(|sink| referenced_secrets(sink).contains(&name))
        .map(|sink| ObjectRef::from(sink.as_ref()))
        .collect()
}
