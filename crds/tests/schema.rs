//! The generated CRD: committed file up to date, valid apiextensions.k8s.io/v1, every field of
//! the API present with its default and validation, defaults identical to the Rust ones.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use adbsink_crd::{AnalyticDBSink, CRD_PATH, crd_yaml};
use common::{minimal, parse, schema};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn committed_crd() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CRD_PATH);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The schema node at a dotted path of property names (`spec.source.topic`).
fn node(path: &str) -> Value {
    let mut cur = schema();
    for part in path.split('.') {
        cur = cur["properties"][part].clone();
        assert!(
            !cur.is_null(),
            "schema has no property {path} (stopped at {part})"
        );
    }
    cur
}

#[test]
fn committed_crd_matches_crdgen() {
    assert!(
        committed_crd() == crd_yaml().expect("crd yaml"),
        "{CRD_PATH} is stale: run `cargo run -p adbsink-crd --bin crdgen` and commit the result"
    );
}

#[test]
fn committed_crd_parses_as_apiextensions_v1() {
    let crd: CustomResourceDefinition = serde_yaml::from_str(&committed_crd()).expect("parses");
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("analyticdbsinks.adbsink.io")
    );
    assert_eq!(crd.spec.group, "adbsink.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "AnalyticDBSink");
    assert_eq!(
        crd.spec.names.short_names,
        Some(vec!["adbsink".to_string()])
    );
    assert_eq!(crd.spec.names.categories, Some(vec!["adbsink".to_string()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<(&str, &str)> = version
        .additional_printer_columns
        .as_ref()
        .expect("printer columns")
        .iter()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        columns,
        vec![
            ("Type", ".spec.destination.instanceType"),
            ("Topic", ".spec.source.topic"),
            ("Table", ".spec.destination.table"),
            ("Concurrency", ".spec.source.concurrency"),
            ("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
            ("Phase", ".status.phase"),
            ("Lag", ".status.lag"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
}

#[test]
fn every_defaulted_field_carries_its_default_in_the_schema() {
    let expected = [
        ("spec.source.concurrency", json!(6)),
        ("spec.source.initialOffset", json!("Earliest")),
        ("spec.runtime.failurePolicy", json!("Continue")),
        ("spec.runtime.resourceCreation", json!("Auto")),
        ("spec.write.writeMode", json!("Insert")),
        ("spec.write.unknownFields", json!("Fail")),
        ("spec.write.maxBatchRows", json!(5000)),
        ("spec.write.maxBatchBytes", json!(4 * 1024 * 1024)),
        ("spec.write.lingerMs", json!(500)),
        ("spec.write.exactlyOnce", json!(false)),
        ("spec.paused", json!(false)),
        ("spec.deletionPolicy", json!("Retain")),
        ("spec.threadsPerReplica", json!(3)),
        (
            "spec.source.sasl.credentialsSecretRef.usernameKey",
            json!("username"),
        ),
        (
            "spec.source.sasl.credentialsSecretRef.passwordKey",
            json!("password"),
        ),
    ];
    for (path, default) in expected {
        assert_eq!(node(path)["default"], default, "default of {path}");
    }
}

#[test]
fn every_field_of_the_api_is_in_the_schema_with_a_description() {
    let fields = [
        "spec.source.bootstrapServers",
        "spec.source.topic",
        "spec.source.concurrency",
        "spec.source.initialOffset",
        "spec.source.sasl.mechanism",
        "spec.source.sasl.credentialsSecretRef.name",
        "spec.source.tls.caSecretRef.key",
        "spec.source.tls.caConfigMapRef.name",
        "spec.runtime.failurePolicy",
        "spec.runtime.resourceCreation",
        "spec.runtime.consumerGroup",
        "spec.runtime.replicationFactor",
        "spec.runtime.topics.offset.name",
        "spec.runtime.topics.offset.partitions",
        "spec.runtime.topics.config.name",
        "spec.runtime.topics.status.name",
        "spec.runtime.topics.deadLetter.name",
        "spec.runtime.topics.error.name",
        "spec.destination.instanceType",
        "spec.destination.instanceId",
        "spec.destination.host",
        "spec.destination.port",
        "spec.destination.database",
        "spec.destination.table",
        "spec.destination.username",
        "spec.destination.password",
        "spec.destination.passwordSecretRef.key",
        "spec.destination.tls.mode",
        "spec.write.writeMode",
        "spec.write.primaryKey",
        "spec.write.unknownFields",
        "spec.write.maxBatchRows",
        "spec.write.maxBatchBytes",
        "spec.write.lingerMs",
        "spec.paused",
        "spec.deletionPolicy",
        "spec.threadsPerReplica",
        "spec.sinkTemplate.image",
        "spec.sinkTemplate.resources",
        "spec.sinkTemplate.nodeSelector",
        "spec.sinkTemplate.tolerations",
        "spec.sinkTemplate.labels",
        "spec.sinkTemplate.annotations",
        "status.observedGeneration",
        "status.phase",
        "status.conditions",
        "status.topics.offset",
        "status.consumerGroup",
        "status.replicas",
        "status.readyReplicas",
        "status.tasks",
        "status.lag",
        "status.recordsWritten",
        "status.recordsFailed",
        "status.lastError",
    ];
    for path in fields {
        let n = node(path);
        let described = n["description"].as_str().is_some_and(|d| !d.is_empty());
        assert!(
            described || path.starts_with("status."),
            "{path} has no description"
        );
    }
}

#[test]
fn enums_and_bounds_are_enforced_by_the_schema() {
    assert_eq!(
        node("spec.source.concurrency")["enum"],
        json!([1, 2, 3, 6, 12])
    );
    assert_eq!(
        node("spec.source.initialOffset")["enum"],
        json!(["Earliest", "Latest"])
    );
    assert_eq!(
        node("spec.runtime.failurePolicy")["enum"],
        json!(["Continue", "Stop"])
    );
    assert_eq!(
        node("spec.runtime.resourceCreation")["enum"],
        json!(["Auto", "Manual"])
    );
    assert_eq!(
        node("spec.destination.instanceType")["enum"],
        json!(["AnalyticDBForMySQL", "AnalyticDBForPostgreSQL"])
    );
    assert_eq!(
        node("spec.source.sasl.mechanism")["enum"],
        json!(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
    );
    assert_eq!(
        node("spec.write.writeMode")["enum"],
        json!(["Insert", "Upsert"])
    );
    assert_eq!(
        node("spec.write.maxBatchBytes")["maximum"],
        json!(67108864.0)
    );
    assert_eq!(node("spec.write.maxBatchRows")["maximum"], json!(100000.0));
    assert_eq!(node("spec.threadsPerReplica")["maximum"], json!(12.0));
    assert_eq!(node("spec.destination.port")["maximum"], json!(65535.0));
    assert_eq!(
        node("spec.source.topic")["pattern"],
        json!("^[a-zA-Z0-9._-]+$")
    );
    let required = |path: &str| node(path)["required"].clone();
    assert_eq!(required("spec"), json!(["destination", "source"]));
    assert_eq!(
        required("spec.source"),
        json!(["bootstrapServers", "topic"])
    );
    assert_eq!(
        required("spec.destination"),
        json!(["database", "host", "instanceType", "table", "username"])
    );
}

#[test]
fn every_cel_rule_compiles() {
    let compiled = kube::core::cel::compile_schema(&schema());
    assert!(
        !compiled.has_errors(),
        "{:?}",
        compiled.compilation_errors()
    );
}

#[test]
fn schema_defaults_equal_rust_defaults() {
    // What the API server stores for a minimal manifest must deserialize to exactly what
    // standalone mode builds from the same manifest.
    let defaulted = kube::core::cel::apply_defaults(&schema(), &minimal());
    assert_ne!(defaulted, minimal(), "the schema applied some defaults");
    assert_eq!(parse(&defaulted), parse(&minimal()));
    let rust = serde_json::to_value(parse(&minimal())).expect("to json");
    for section in ["runtime", "write"] {
        assert_eq!(
            defaulted["spec"][section], rust["spec"][section],
            "spec.{section}"
        );
    }
    assert_eq!(defaulted["spec"]["source"]["concurrency"], json!(6));
}

#[test]
fn crd_is_generated_from_the_types() {
    assert_eq!(AnalyticDBSink::crd_name(), "analyticdbsinks.adbsink.io");
}
