//! The reconcile pipeline: validate → check for conflicts → dereference → credentials Secret →
//! Kafka (topics, group, config record) → Deployment → observe → status. Each step records what
//! it found in `Findings`; the status is computed from them (pure) and written once at the end,
//! whether the pipeline finished or stopped early.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adbsink_crd::{
    ANNOTATION_RESTART, AnalyticDBSink, DeletionPolicy, FINALIZER, LABEL_SINK, ResourceCreation,
    credentials_secret_name,
};
use adbsink_runtime::provision::GroupState;
use adbsink_runtime::records::ConfigRecord;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, ResourceExt};
use tracing::Instrument;

use crate::build::deployment::{PodInputs, deployment, desired_replicas};
use crate::build::{credentials, hash, network_policy, password_move};
use crate::conditions::{self, Check, reason};
use crate::conflict::{consumer_group, identity, older_claimant};
use crate::context::{Context, Provisioned};
use crate::dereference::Purpose;
use crate::error::{Error, Result};
use crate::status::{self, Findings, Replicas};
use crate::{apply, dereference, kafka};

/// How often a healthy sink is looked at again, to refresh lag and task states.
pub const REFRESH: Duration = Duration::from_secs(30);
/// How often a sink waiting on something the operator is not told about (a conflict going away,
/// a ConfigMap appearing) is looked at again.
const RECHECK: Duration = Duration::from_secs(60);
/// How long a refresh may trust the last provisioning of an unchanged sink (topics deleted
/// behind the operator's back are recreated within this).
const PROVISION_RECHECK: Duration = Duration::from_secs(300);

/// Entry point for the controller (and for tests, which call it directly).
pub async fn reconcile(sink: Arc<AnalyticDBSink>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let key = identity(&sink);
    let span = tracing::info_span!("reconcile", sink = %key);
    let result = async {
        let namespace = sink
            .namespace()
            .ok_or(Error::MissingField("metadata.namespace"))?;
        let api: Api<AnalyticDBSink> = Api::namespaced(ctx.client.clone(), &namespace);
        finalizer(&api, FINALIZER, sink, |event| async {
            match event {
                Event::Apply(sink) => apply_sink(&api, &sink, &ctx).await,
                Event::Cleanup(sink) => cleanup(&api, &sink, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    }
    .instrument(span)
    .await;
    ctx.metrics.reconciled(started.elapsed());
    match &result {
        Ok(_) => ctx.reset_backoff(&key),
        Err(e) => ctx.metrics.failed(e.metric_label()),
    }
    result
}

/// Retries a failed reconcile with a per-sink exponential backoff.
pub fn error_policy(sink: Arc<AnalyticDBSink>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = identity(&sink);
    let delay = ctx.backoff(&key);
    tracing::warn!(sink = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn apply_sink(
    api: &Api<AnalyticDBSink>,
    sink: &AnalyticDBSink,
    ctx: &Context,
) -> Result<Action> {
    let mut sink = sink.clone();
    let mut findings = Findings::default();
    let outcome = pipeline(api, &mut sink, &mut findings, ctx).await;
    if outcome.is_err() {
        ctx.forget_provisioned(&identity(&sink));
    }
    if let Err(Error::Kafka(e)) = &outcome {
        let message = format!(
            "Kafka at {} is unavailable: {e}",
            sink.spec.source.bootstrap_servers
        );
        if newly(&sink, reason::KAFKA_UNAVAILABLE) {
            ctx.event(&sink, true, reason::KAFKA_UNAVAILABLE, message.clone())
                .await;
        }
        findings.kafka_error = Some(message);
    }
    write_status(api, sink, |sink| {
        status::compute(sink, &findings, jiff::Timestamp::now())
    })
    .await?;
    outcome
}

/// Writes the status `compute` makes of the sink; when the sink changed meanwhile (409), reads
/// it again and computes again, so what this reconcile found (topics it created above all) is
/// merged into the newer status instead of overwriting it or being lost.
async fn write_status(
    api: &Api<AnalyticDBSink>,
    mut sink: AnalyticDBSink,
    compute: impl Fn(&AnalyticDBSink) -> adbsink_crd::AnalyticDBSinkStatus,
) -> Result<()> {
    let mut conflicts = 0;
    loop {
        let status = compute(&sink);
        if sink.status.as_ref() == Some(&status) {
            return Ok(());
        }
        match apply::status(api, &sink, &status).await {
            Err(Error::Kube(kube::Error::Api(e))) if e.code == 409 && conflicts < 5 => {
                conflicts += 1;
                sink = api.get(&sink.name_any()).await?;
            }
            other => return other.map(drop),
        }
    }
}

async fn pipeline(
    api: &Api<AnalyticDBSink>,
    sink: &mut AnalyticDBSink,
    findings: &mut Findings,
    ctx: &Context,
) -> Result<Action> {
    let name = sink.name_any();
    let namespace = sink
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;

    // First of all: an inline password never stays in the CR, whatever stops the pipeline.
    if let Some(action) = move_password(api, sink, findings, ctx).await? {
        return Ok(action);
    }

    if let Err(e) = adbsink_crd::validate(sink) {
        let message = e.to_string();
        if newly(sink, reason::INVALID_SPEC) {
            ctx.event(sink, true, reason::INVALID_SPEC, message.clone())
                .await;
        }
        findings.invalid = Some(message);
        // Only an edit can fix the spec.
        return Ok(Action::await_change());
    }

    if let Some(owner) = older_claimant(sink, &watched_sinks(ctx).await?) {
        let owner = identity(owner);
        if newly(sink, reason::RESOURCE_CONFLICT) {
            let note = format!(
                "consumer group {:?} belongs to {owner}",
                consumer_group(sink)
            );
            ctx.event(sink, true, reason::RESOURCE_CONFLICT, note).await;
        }
        findings.conflict = Some(owner);
        return Ok(Action::requeue(RECHECK));
    }

    let resolved = match dereference::resolve(&ctx.client, sink).await? {
        Ok(resolved) => resolved,
        Err(missing) => {
            let message = missing.join("; ");
            if newly(sink, reason::SECRET_NOT_FOUND) {
                ctx.event(sink, true, reason::SECRET_NOT_FOUND, message.clone())
                    .await;
            }
            findings.credentials = Some(Check::fail(reason::SECRET_NOT_FOUND, message));
            return Ok(Action::requeue(RECHECK));
        }
    };

    let secret = credentials::credentials_secret(sink, &resolved)?;
    let secret_name = credentials_secret_name(&name);
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &namespace);
    if let Some(action) = foreign_secret(&secrets, sink, findings, ctx).await? {
        return Ok(action);
    }
    apply::apply(&secrets, &secret).await?;
    findings.credentials = Some(Check::ok(
        reason::CREDENTIALS_RESOLVED,
        format!("Secret {secret_name:?} holds the sink's credentials"),
    ));

    let record = ConfigRecord::new(&name, &sink.spec);
    let config_json = serde_json::to_string(&record)?;
    let config_hash = hash::config_hash(&config_json, &secret, &resolved);
    let provisioner = (ctx.provisioners)(&kafka::connection(sink, &resolved))?;
    let group = consumer_group(sink);
    let key = identity(sink);
    // The uid too: a sink deleted without cleanup and made again is another sink.
    let fingerprint = format!(
        "{}/{}/{config_hash}",
        sink.uid().unwrap_or_default(),
        sink.metadata.generation.unwrap_or(0)
    );
    // A refresh of a sink provisioned recently with this very spec and these credentials
    // skips the Kafka admin work: it is most of a reconcile's cost, and at rest hundreds of
    // sinks refresh every 30 s. A failure, or PROVISION_RECHECK passing, redoes it.
    if let Some(known) = ctx.provisioned(&key, &fingerprint, PROVISION_RECHECK) {
        findings.topics = Some(known.topics);
        findings.group = known.group;
    } else {
        let provisioned = kafka::provision(&provisioner, sink, &group).await?;
        if !provisioned.created.is_empty() {
            let note = format!("created topics {}", provisioned.created.join(", "));
            ctx.event(sink, false, reason::TOPICS_CREATED, note).await;
        }
        findings.created_topics = provisioned.created;
        findings.topics = Some(provisioned.topics.clone());
        if let Some((_, Some(GroupState::Created))) = &provisioned.group {
            let note = format!("created consumer group {group:?}");
            ctx.event(sink, false, reason::GROUP_CREATED, note).await;
        }
        let group_check = provisioned.group.map(|(check, _)| check);
        findings.group = group_check.clone();
        if let Some(blocker) = [Some(provisioned.topics.clone()), group_check.clone()]
            .into_iter()
            .flatten()
            .find(|c| !c.is_ok())
        {
            if newly(sink, blocker.reason) {
                ctx.event(sink, true, blocker.reason, blocker.message).await;
            }
            return Ok(Action::requeue(REFRESH));
        }

        // Like Kafka Connect, the config topic gets a record when the configuration changes,
        // not on every 30 s look; a topic this reconcile (re)created gets it again.
        if !findings.created_topics.is_empty() || ctx.config_unpublished(&key, &config_json) {
            kafka::publish_config(&provisioner, sink, &record).await?;
            ctx.config_published(&key, config_json.clone());
        }
        let (topics, group_found) = kafka::as_found(sink, &group, provisioned.topics, group_check);
        ctx.mark_provisioned(
            &key,
            Provisioned {
                fingerprint,
                at: Instant::now(),
                topics,
                group: group_found,
            },
        );
    }

    let previous_restart = sink.status.as_ref().and_then(|s| s.last_restart.clone());
    // A removed annotation keeps the pods' last restart value: removing it rolls nothing.
    let restart = sink
        .annotations()
        .get(ANNOTATION_RESTART)
        .cloned()
        .or_else(|| previous_restart.clone());
    if restart.is_some() && restart != previous_restart {
        let note = format!(
            "rolling the sink pods ({ANNOTATION_RESTART}={})",
            restart.as_deref().unwrap_or_default()
        );
        ctx.event(sink, false, "Restarted", note).await;
        findings.restart = restart.clone();
    }
    let inputs = PodInputs {
        default_image: &ctx.config.sink_image,
        config_json: &config_json,
        config_hash: &config_hash,
        restart: restart.as_deref(),
        run_as: ctx.config.sink_run_as,
    };
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &namespace);
    let applied = apply::apply(&deployments, &deployment(sink, &inputs)?).await?;
    findings.deployment = Some(Replicas {
        desired: desired_replicas(&sink.spec),
        ready: applied.status.and_then(|s| s.ready_replicas).unwrap_or(0),
    });
    if ctx.config.network_policies {
        let policies = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &namespace);
        apply::apply(&policies, &network_policy::network_policy(sink)?).await?;
    }

    let records = kafka::task_records(&provisioner, sink).await?;
    findings.tasks = Some(match live_pods(ctx, &namespace, &name).await {
        Some(pods) => kafka::live_tasks(records, &pods),
        None => records,
    });
    findings.lag = Some(
        provisioner
            .lag(&group, &sink.spec.source.topic)
            .await?
            .total,
    );
    Ok(Action::requeue(REFRESH))
}

/// Moves an inline password into `<name>-credentials` and out of the CR. GitOps tools apply
/// the manifest again and again, server- or client-side, so this runs on every reconcile that
/// finds a password, before any step that could stop the pipeline.
async fn move_password(
    api: &Api<AnalyticDBSink>,
    sink: &mut AnalyticDBSink,
    findings: &mut Findings,
    ctx: &Context,
) -> Result<Option<Action>> {
    let Some(password) = sink.spec.destination.password.clone() else {
        return Ok(None);
    };
    let namespace = sink
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &namespace);
    if let Some(action) = foreign_secret(&secrets, sink, findings, ctx).await? {
        return Ok(Some(action));
    }
    let secret_name = credentials_secret_name(&sink.name_any());
    apply::apply_moved_password(
        &secrets,
        &credentials::moved_password_secret(sink, &password)?,
    )
    .await?;
    let patch = password_move::password_move_patch(sink);
    *sink = api
        .patch(
            &sink.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    let note = format!("moved the inline password into Secret {secret_name:?}");
    ctx.event(sink, false, "PasswordMoved", note).await;
    Ok(None)
}

/// A Secret named `<name>-credentials` that the sink did not create is the user's: it is
/// reported and never touched (taking it over would make the garbage collector delete it
/// with the sink).
async fn foreign_secret(
    secrets: &Api<Secret>,
    sink: &AnalyticDBSink,
    findings: &mut Findings,
    ctx: &Context,
) -> Result<Option<Action>> {
    let secret_name = credentials_secret_name(&sink.name_any());
    match secrets.get_opt(&secret_name).await? {
        Some(existing) if !credentials::is_ours(&existing, sink) => {
            let message = format!(
                "Secret {secret_name:?} exists and was not created by this sink: the operator \
                 does not take it over; rename or delete it"
            );
            if newly(sink, reason::SECRET_CONFLICT) {
                ctx.event(sink, true, reason::SECRET_CONFLICT, message.clone())
                    .await;
            }
            findings.credentials = Some(Check::fail(reason::SECRET_CONFLICT, message));
            Ok(Some(Action::requeue(RECHECK)))
        }
        _ => Ok(None),
    }
}

async fn cleanup(
    api: &Api<AnalyticDBSink>,
    sink: &AnalyticDBSink,
    ctx: &Context,
) -> Result<Action> {
    ctx.forget_config(&identity(sink));
    ctx.forget_provisioned(&identity(sink));
    let status = status::deleting(sink, jiff::Timestamp::now());
    let blocked = sink.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == conditions::READY && c.reason == reason::CLEANUP_BLOCKED)
    });
    if sink.status.as_ref() != Some(&status) && !blocked {
        apply::status(api, sink, &status).await?;
    }
    if sink.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.event(
            sink,
            false,
            "Retained",
            "deletionPolicy Retain: topics and consumer group are kept".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let previous = sink.status.clone().unwrap_or_default();
    let topics = previous.created_topics;
    // Only a group this sink provisioned itself, and only while no other sink claims it.
    let group = previous
        .consumer_group
        .filter(|_| sink.spec.runtime.resource_creation == ResourceCreation::Auto);
    if topics.is_empty() && group.is_none() {
        return Ok(Action::await_change());
    }
    // Only what reaches Kafka: the database's Secrets may be deleted first.
    let resolved = match dereference::resolve_for(&ctx.client, sink, Purpose::Cleanup).await? {
        Ok(resolved) => resolved,
        Err(missing) => {
            let message = format!(
                "cannot reach Kafka to apply deletionPolicy Delete: {}; restore them, or remove \
                 the finalizer {FINALIZER} to keep the topics and group",
                missing.join("; ")
            );
            let blocked = status::cleanup_blocked(sink, message.clone(), jiff::Timestamp::now());
            if sink.status.as_ref() != Some(&blocked) {
                apply::status(api, sink, &blocked).await?;
                ctx.event(sink, true, reason::CLEANUP_BLOCKED, message.clone())
                    .await;
            }
            return Err(Error::Cleanup(message));
        }
    };
    let provisioner = (ctx.provisioners)(&kafka::connection(sink, &resolved))?;
    provisioner.delete_topics(&topics).await?;
    let mut note = format!("deleted topics [{}]", topics.join(", "));
    if let Some(group) = group
        && older_claimant(sink, &watched_sinks(ctx).await?).is_none()
    {
        provisioner.delete_group(&group).await?;
        note.push_str(&format!(" and consumer group {group:?}"));
    }
    ctx.event(sink, false, "Deleted", note).await;
    Ok(Action::await_change())
}

/// Every sink the operator may see: the conflict check's scope.
async fn watched_sinks(ctx: &Context) -> Result<Vec<AnalyticDBSink>> {
    if let Some(cached) = ctx.cached_sinks().await {
        return Ok(cached);
    }
    let params = ListParams::default();
    if ctx.config.namespaces.is_empty() {
        return Ok(Api::<AnalyticDBSink>::all(ctx.client.clone())
            .list(&params)
            .await?
            .items);
    }
    let mut all = Vec::new();
    for namespace in &ctx.config.namespaces {
        let api = Api::<AnalyticDBSink>::namespaced(ctx.client.clone(), namespace);
        all.extend(api.list(&params).await?.items);
    }
    Ok(all)
}

/// Names of the sink's pods; None when they cannot be listed (then no task is filtered out,
/// rather than failing every reconcile over the status detail).
async fn live_pods(ctx: &Context, namespace: &str, sink: &str) -> Option<Vec<String>> {
    let params = ListParams::default().labels(&format!("{LABEL_SINK}={sink}"));
    match Api::<Pod>::namespaced(ctx.client.clone(), namespace)
        .list_metadata(&params)
        .await
    {
        Ok(pods) => Some(pods.items.iter().map(ResourceExt::name_any).collect()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list sink pods; reporting every task on the status topic");
            None
        }
    }
}

/// Whether Ready does not already carry `reason`: events are sent when a problem starts, not on
/// every requeue while it lasts.
fn newly(sink: &AnalyticDBSink, reason: &str) -> bool {
    !sink.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == conditions::READY && c.reason == reason)
    })
}
