//! The sink Deployment `<name>-sink`: the contract with the runtime binary (env, mounts, probes,
//! port) and the sizing rules.

use std::collections::BTreeMap;

use adbsink_crd::*;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::build::meta::{child_meta, labels};
use crate::error::Result;

const CONTAINER: &str = "sink";
const PORT_NAME: &str = "http";
/// Long enough for a task to finish its in-flight batch and commit before SIGKILL.
const TERMINATION_GRACE_SECONDS: i64 = 45;

/// What the Deployment needs besides the spec.
#[derive(Debug, Clone)]
pub struct PodInputs<'a> {
    /// The operator's default runtime image.
    pub default_image: &'a str,
    /// JSON of the `ConfigRecord`, passed as `ADBSINK_CONFIG`.
    pub config_json: &'a str,
    /// Pod-template hash of configuration and credentials.
    pub config_hash: &'a str,
    /// The current `adbsink.io/restart` annotation of the sink.
    pub restart: Option<&'a str>,
    /// UID and GID the sink pods run as; None leaves them to the platform (OpenShift's
    /// restricted SCC assigns a UID from the namespace's range and refuses any other).
    pub run_as: Option<i64>,
}

/// Pods the sink needs when running: the fewest that share the concurrency evenly with at most
/// threadsPerReplica threads each, so the pods' threads add up to the concurrency exactly
/// (every pod of a Deployment runs the same number). A pod per thread always qualifies.
pub fn sized_replicas(spec: &AnalyticDBSinkSpec) -> i32 {
    let concurrency = spec.source.concurrency.max(1);
    let at_least = concurrency.div_ceil(spec.threads_per_replica.max(1));
    let pods = (at_least..=concurrency)
        .find(|pods| concurrency.is_multiple_of(*pods))
        .unwrap_or(concurrency);
    i32::try_from(pods).unwrap_or(i32::MAX)
}

/// Replicas to run now: none while paused.
pub fn desired_replicas(spec: &AnalyticDBSinkSpec) -> i32 {
    if spec.paused { 0 } else { sized_replicas(spec) }
}

/// Threads each pod runs: the concurrency over the sized pods, which divide it. Independent of
/// `paused`, so pausing changes only the replica count and does not roll the template.
pub fn threads_per_pod(spec: &AnalyticDBSinkSpec) -> u32 {
    let pods = u32::try_from(sized_replicas(spec)).unwrap_or(1).max(1);
    spec.source.concurrency.max(1) / pods
}

pub fn deployment(sink: &AnalyticDBSink, inputs: &PodInputs<'_>) -> Result<Deployment> {
    let name = sink.name_any();
    let template = &sink.spec.sink_template;
    let mut pod_labels = template.labels.clone();
    // Ours last: a template label must not break the selector.
    pod_labels.extend(labels(&name));
    let mut annotations = template.annotations.clone();
    annotations.insert(
        ANNOTATION_CONFIG_HASH.to_string(),
        inputs.config_hash.to_string(),
    );
    if let Some(restart) = inputs.restart {
        annotations.insert(ANNOTATION_RESTART.to_string(), restart.to_string());
    }
    let (volumes, mounts, mut env) = volumes(&sink.spec);
    env.splice(0..0, base_env(sink, inputs));
    Ok(Deployment {
        metadata: child_meta(sink, sink_deployment_name(&name))?,
        spec: Some(DeploymentSpec {
            replicas: Some(desired_replicas(&sink.spec)),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(LABEL_SINK.to_string(), name.clone())])),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security(inputs.run_as)),
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
                    image_pull_secrets: non_empty(template.image_pull_secrets.clone()),
                    node_selector: non_empty_map(template.node_selector.clone()),
                    tolerations: non_empty(template.tolerations.clone()),
                    affinity: template.affinity.clone(),
                    containers: vec![Container {
                        name: CONTAINER.to_string(),
                        image: Some(
                            template
                                .image
                                .clone()
                                .unwrap_or_else(|| inputs.default_image.to_string()),
                        ),
                        image_pull_policy: template.image_pull_policy.clone(),
                        args: Some(vec!["run".to_string()]),
                        ports: Some(vec![ContainerPort {
                            name: Some(PORT_NAME.to_string()),
                            container_port: i32::from(SINK_HTTP_PORT),
                            protocol: Some("TCP".to_string()),
                            ..ContainerPort::default()
                        }]),
                        env: Some(env),
                        resources: template.resources.clone(),
                        liveness_probe: Some(probe("/healthz", 10, 3)),
                        readiness_probe: Some(probe("/readyz", 5, 3)),
                        security_context: Some(container_security()),
                        volume_mounts: Some(mounts),
                        ..Container::default()
                    }],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

fn base_env(sink: &AnalyticDBSink, inputs: &PodInputs<'_>) -> Vec<EnvVar> {
    let name = sink.name_any();
    let secret = credentials_secret_name(&name);
    let mut env = vec![
        value(ENV_SINK_NAME, &name),
        value(ENV_CONFIG, inputs.config_json),
        value(ENV_THREADS, &threads_per_pod(&sink.spec).to_string()),
        EnvVar {
            name: ENV_TASK_PREFIX.to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".to_string(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        value(ENV_HTTP_ADDR, &format!("[::]:{SINK_HTTP_PORT}")),
        value(ENV_LOG_FORMAT, "json"),
        from_secret(ENV_DB_USERNAME, &secret, SECRET_KEY_DB_USERNAME),
        from_secret(ENV_DB_PASSWORD, &secret, SECRET_KEY_DB_PASSWORD),
    ];
    if sink.spec.source.sasl.is_some() {
        env.push(from_secret(
            ENV_SASL_USERNAME,
            &secret,
            SECRET_KEY_SASL_USERNAME,
        ));
        env.push(from_secret(
            ENV_SASL_PASSWORD,
            &secret,
            SECRET_KEY_SASL_PASSWORD,
        ));
    }
    env
}

/// The /tmp scratch volume and the CA bundles, with the env vars that point at the CA files.
fn volumes(spec: &AnalyticDBSinkSpec) -> (Vec<Volume>, Vec<VolumeMount>, Vec<EnvVar>) {
    let mut volumes = vec![Volume {
        name: "tmp".to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    let mut mounts = vec![mount("tmp", "/tmp")];
    let mut env = Vec::new();
    let tls = spec.source.tls.as_ref();
    let kafka_ca = match (
        tls.and_then(|t| t.ca_secret_ref.as_ref()),
        tls.and_then(|t| t.ca_config_map_ref.as_ref()),
    ) {
        (Some(r), _) => Some((r, true)),
        (None, Some(r)) => Some((r, false)),
        (None, None) => None,
    };
    let db_ca = spec
        .destination
        .tls
        .as_ref()
        .and_then(|t| t.ca_secret_ref.as_ref())
        .map(|r| (r, true));
    for (volume, dir, variable, ca) in [
        ("kafka-ca", KAFKA_CA_DIR, ENV_KAFKA_CA_FILE, kafka_ca),
        ("db-ca", DB_CA_DIR, ENV_DB_CA_FILE, db_ca),
    ] {
        let Some((r, from_secret)) = ca else { continue };
        let items = Some(vec![KeyToPath {
            key: r.key.clone(),
            path: r.key.clone(),
            ..KeyToPath::default()
        }]);
        volumes.push(Volume {
            name: volume.to_string(),
            secret: from_secret.then(|| SecretVolumeSource {
                secret_name: Some(r.name.clone()),
                items: items.clone(),
                ..SecretVolumeSource::default()
            }),
            config_map: (!from_secret).then(|| ConfigMapVolumeSource {
                name: r.name.clone(),
                items: items.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            read_only: Some(true),
            ..mount(volume, dir)
        });
        env.push(value(variable, &format!("{dir}/{}", r.key)));
    }
    (volumes, mounts, env)
}

/// The `restricted` Pod Security Standard, with a fixed non-root id (when one is given) so
/// file ownership on the emptyDir is predictable.
fn pod_security(run_as: Option<i64>) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: run_as,
        run_as_group: run_as,
        fs_group: run_as,
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

fn probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(PORT_NAME.to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

fn value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    }
}

fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        ..VolumeMount::default()
    }
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

fn non_empty_map(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

#[cfg(test)]
#[path = "deployment_tests.rs"]
mod tests;
