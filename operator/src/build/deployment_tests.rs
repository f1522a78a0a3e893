use super::*;
use crate::build::testing::sink;
use serde_json::{Value, json};

const INPUTS: PodInputs<'static> = PodInputs {
    default_image: "registry/adbsink:1",
    config_json: "{\"version\":1}",
    config_hash: "abc123",
    restart: None,
    run_as: Some(65532),
};

fn build(sink: &AnalyticDBSink, inputs: &PodInputs<'_>) -> Value {
    serde_json::to_value(deployment(sink, inputs).expect("deployment")).expect("json")
}

fn env(deployment: &Value) -> Vec<Value> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn sizes_replicas_and_threads_from_concurrency() {
    let mut s = sink("s");
    for (concurrency, per_replica, replicas, threads) in [
        (6, 3, 2, 3),
        (12, 3, 4, 3),
        (1, 3, 1, 1),
        (12, 5, 3, 4),
        (2, 12, 1, 2),
        // Threads add up to the concurrency, never more per pod than asked: not 2 pods of 2.
        (3, 2, 3, 1),
        (6, 4, 2, 3),
        (12, 7, 2, 6),
        (12, 1, 12, 1),
    ] {
        s.spec.source.concurrency = concurrency;
        s.spec.threads_per_replica = per_replica;
        assert_eq!(
            sized_replicas(&s.spec),
            replicas,
            "{concurrency}/{per_replica}"
        );
        assert_eq!(
            threads_per_pod(&s.spec),
            threads,
            "{concurrency}/{per_replica}"
        );
        assert_eq!(desired_replicas(&s.spec), replicas);
    }
    s.spec.paused = true;
    assert_eq!(desired_replicas(&s.spec), 0);
    assert_eq!(
        threads_per_pod(&s.spec),
        1,
        "pausing does not change the template"
    );
}

#[test]
fn deployment_has_the_contracted_metadata_and_selector() {
    let d = build(&sink("orders"), &INPUTS);
    let labels = json!({
        "app.kubernetes.io/name": "adbsink-sink",
        "app.kubernetes.io/instance": "orders",
        "app.kubernetes.io/managed-by": "adbsink-operator",
        "adbsink.io/sink": "orders",
    });
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["metadata"]["name"], "orders-sink");
    assert_eq!(d["metadata"]["namespace"], "ns");
    assert_eq!(d["metadata"]["labels"], labels);
    assert_eq!(d["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        d["metadata"]["ownerReferences"][0]["kind"],
        "AnalyticDBSink"
    );
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["selector"],
        json!({"matchLabels": {"adbsink.io/sink": "orders"}})
    );
    assert_eq!(d["spec"]["template"]["metadata"]["labels"], labels);
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"],
        json!({"adbsink.io/config-hash": "abc123"})
    );
}

#[test]
fn without_a_uid_the_platform_assigns_one_and_the_pod_stays_non_root() {
    let inputs = PodInputs {
        run_as: None,
        ..INPUTS
    };
    let d = build(&sink("orders"), &inputs);
    assert_eq!(
        d["spec"]["template"]["spec"]["securityContext"],
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
    );
}

#[test]
fn pod_is_restricted_and_probed_on_the_health_port() {
    let d = build(&sink("orders"), &INPUTS);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["terminationGracePeriodSeconds"], 45);
    assert_eq!(
        pod["securityContext"],
        json!({
            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"}
        })
    );
    assert_eq!(pod["volumes"], json!([{"name": "tmp", "emptyDir": {}}]));
    let container = &pod["containers"][0];
    assert_eq!(pod["containers"].as_array().map(Vec::len), Some(1));
    assert_eq!(container["name"], "sink");
    assert_eq!(container["image"], "registry/adbsink:1");
    assert_eq!(container["args"], json!(["run"]));
    assert_eq!(
        container["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        container["securityContext"],
        json!({
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]}
        })
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http"})
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "http"})
    );
    assert_eq!(
        container["volumeMounts"],
        json!([{"name": "tmp", "mountPath": "/tmp"}])
    );
}

#[test]
fn env_carries_config_threads_and_credentials_by_reference() {
    let d = build(&sink("orders"), &INPUTS);
    let secret_ref =
        |key: &str| json!({"secretKeyRef": {"name": "orders-credentials", "key": key}});
    assert_eq!(
        env(&d),
        vec![
            json!({"name": "ADBSINK_SINK_NAME", "value": "orders"}),
            json!({"name": "ADBSINK_CONFIG", "value": "{\"version\":1}"}),
            json!({"name": "ADBSINK_THREADS", "value": "3"}),
            json!({"name": "ADBSINK_TASK_PREFIX", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
            json!({"name": "ADBSINK_HTTP_ADDR", "value": "[::]:8080"}),
            json!({"name": "ADBSINK_LOG_FORMAT", "value": "json"}),
            json!({"name": "ADBSINK_DB_USERNAME", "valueFrom": secret_ref("username")}),
            json!({"name": "ADBSINK_DB_PASSWORD", "valueFrom": secret_ref("password")}),
        ]
    );
}

#[test]
fn sasl_and_ca_bundles_add_env_and_read_only_mounts() {
    let mut s = sink("orders");
    s.spec.source.sasl = Some(SaslSpec {
        mechanism: SaslMechanism::ScramSha512,
        credentials_secret_ref: SaslCredentialsRef {
            name: "kafka-user".into(),
            username_key: "username".into(),
            password_key: "password".into(),
        },
    });
    s.spec.source.tls = Some(KafkaTlsSpec {
        ca_secret_ref: None,
        ca_config_map_ref: Some(KeyRef {
            name: "kafka-ca".into(),
            key: "ca.pem".into(),
        }),
    });
    s.spec.destination.tls = Some(DatabaseTlsSpec {
        mode: DatabaseTlsMode::VerifyFull,
        ca_secret_ref: Some(KeyRef {
            name: "db-tls".into(),
            key: "ca.crt".into(),
        }),
    });
    let d = build(&s, &INPUTS);
    let env = env(&d);
    let names: Vec<&str> = env.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(
        names[8..],
        [
            "ADBSINK_SASL_USERNAME",
            "ADBSINK_SASL_PASSWORD",
            "ADBSINK_KAFKA_CA_FILE",
            "ADBSINK_DB_CA_FILE"
        ]
    );
    assert_eq!(
        env[9]["valueFrom"]["secretKeyRef"],
        json!({"name": "orders-credentials", "key": "sasl-password"})
    );
    assert_eq!(env[10]["value"], "/etc/adbsink/kafka-ca/ca.pem");
    assert_eq!(env[11]["value"], "/etc/adbsink/db-ca/ca.crt");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][1],
        json!({"name": "kafka-ca", "configMap": {"name": "kafka-ca", "items": [{"key": "ca.pem", "path": "ca.pem"}]}})
    );
    assert_eq!(
        pod["volumes"][2],
        json!({"name": "db-ca", "secret": {"secretName": "db-tls", "items": [{"key": "ca.crt", "path": "ca.crt"}]}})
    );
    assert_eq!(
        pod["containers"][0]["volumeMounts"][1],
        json!({"name": "kafka-ca", "mountPath": "/etc/adbsink/kafka-ca", "readOnly": true})
    );
    assert_eq!(
        pod["containers"][0]["volumeMounts"][2],
        json!({"name": "db-ca", "mountPath": "/etc/adbsink/db-ca", "readOnly": true})
    );
}

#[test]
fn sink_template_overrides_image_scheduling_and_adds_labels_without_breaking_the_selector() {
    let mut s = sink("orders");
    let template: SinkTemplate = serde_json::from_value(json!({
        "image": "mirror/adbsink:2",
        "imagePullPolicy": "Always",
        "imagePullSecrets": [{"name": "pull"}],
        "resources": {"limits": {"memory": "512Mi"}},
        "nodeSelector": {"pool": "sinks"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "labels": {"team": "data", "adbsink.io/sink": "hijack"},
        "annotations": {"prometheus.io/scrape": "true"}
    }))
    .expect("template");
    s.spec.sink_template = template;
    let inputs = PodInputs {
        restart: Some("2026-01-01"),
        ..INPUTS
    };
    let d = build(&s, &inputs);
    let pod = &d["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "mirror/adbsink:2");
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(
        container["resources"],
        json!({"limits": {"memory": "512Mi"}})
    );
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "pull"}]));
    assert_eq!(pod["nodeSelector"], json!({"pool": "sinks"}));
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "dedicated", "operator": "Exists"}])
    );
    let meta = &d["spec"]["template"]["metadata"];
    assert_eq!(meta["labels"]["team"], "data");
    assert_eq!(meta["labels"]["adbsink.io/sink"], "orders");
    assert_eq!(
        meta["annotations"],
        json!({
            "prometheus.io/scrape": "true",
            "adbsink.io/config-hash": "abc123",
            "adbsink.io/restart": "2026-01-01"
        })
    );
}
