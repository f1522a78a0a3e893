//! Wires `reconcile` into a kube-runtime Controller: the sinks, their children, and the Secrets
//! they reference (a rotated password must roll the pods without waiting for the requeue).

use std::sync::Arc;

use adbsink_crd::{ANNOTATION_RESTART, AnalyticDBSink, LABEL_SINK};
use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;

use crate::context::Context;
use crate::dereference::referenced_secrets;
use crate::reconcile::{error_policy, reconcile};
use crate::server::Readiness;

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Reconciles running at once. Without a bound, a resync of hundreds of sinks opens as many
/// Kafka admin clients at once.
const CONCURRENCY: u16 = 8;

/// What a change of the sink must touch to be worth a reconcile: its spec (generation), its
/// deletion, and the annotation the operator acts on. Status writes (the operator's own, every
/// refresh) change none of these; lag and task states refresh on the requeue instead.
fn acted_on(sink: &AnalyticDBSink) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    sink.metadata.generation.hash(&mut hasher);
    sink.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    sink.metadata.finalizers.hash(&mut hasher);
    sink.annotations().get(ANNOTATION_RESTART).hash(&mut hasher);
    Some(hasher.finish())
}

/// Runs the controller for one namespace (`None`: all) until `stop` turns true.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    ready: Arc<Readiness>,
    mut stop: watch::Receiver<bool>,
) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let children = watcher::Config::default().labels(LABEL_SINK);
    let (store, writer) = reflector::store();
    let (listed, listed_rx) = watch::channel(false);
    ctx.register_sinks(store.clone(), listed_rx);
    let sinks = watcher(
        scoped::<AnalyticDBSink>(&client, ns),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .reflect(writer)
    .inspect(move |event| {
        // Every relist ends in InitDone; the first one is in the store: the sinks are all known.
        if matches!(event, Ok(watcher::Event::InitDone)) && !listed.send_replace(true) {
            tracing::info!("sinks listed; ready");
            ready.synced();
        }
    })
    .applied_objects()
    .predicate_filter(acted_on, Default::default());
    let controller = Controller::for_stream(sinks, store.clone())
        .with_config(controller::Config::default().concurrency(CONCURRENCY));
    // Secrets are watched for their names only (a referenced one changed: roll the pods), not
    // with the contents of every Secret in the namespace.
    let secrets = watcher(
        scoped::<PartialObjectMeta<Secret>>(&client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let controller = controller
        .owns(scoped::<Deployment>(&client, ns), children.clone())
        .owns(scoped::<Secret>(&client, ns), children.clone())
        .watches_stream(secrets, move |secret| referencing(&store, &secret));
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
                // A watch that fails (RBAC, a removed CRD, the API server) stops the sink
                // from being seen at all: that must be visible, unlike a failed reconcile,
                // which error_policy already logs.
                Err(e @ controller::Error::QueueError(_)) => {
                    tracing::warn!(error = %e, "watch failed; retrying")
                }
                Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
            }
        })
        .await;
    tracing::info!(namespace = ns.unwrap_or("*"), "controller stopped");
}

/// The sinks in the Secret's namespace that reference it by name.
fn referencing(
    store: &Store<AnalyticDBSink>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<AnalyticDBSink>> {
    let name = secret.name_any();
    store
        .state()
        .iter()
        .filter(|sink| sink.namespace() == secret.namespace())
        .filter(|sink| referenced_secrets(sink).contains(&name))
        .map(|sink| ObjectRef::from(sink.as_ref()))
        .collect()
}
