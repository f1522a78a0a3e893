//! The naming and field rules, checked both in Rust and by the CRD's CEL rules, which must agree.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use adbsink_crd::{Error, validate};
use common::{cel, minimal, parse, set};
use serde_json::{Value, json};

fn rust_errors(object: &Value) -> Vec<String> {
    match validate(&parse(object)) {
        Ok(()) => vec![],
        Err(Error::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn named(name: &str) -> Value {
    let mut object = minimal();
    set(&mut object, "metadata.name", json!(name));
    object
}

#[test]
fn minimal_sink_is_valid_in_rust_and_cel() {
    assert_eq!(rust_errors(&minimal()), Vec::<String>::new());
    cel(&minimal()).expect("CEL accepts the minimal sink");
}

#[test]
fn names_of_1_and_48_characters_are_accepted() {
    for name in ["a".to_string(), "a".repeat(48), "0-sink-1".to_string()] {
        assert_eq!(rust_errors(&named(&name)), Vec::<String>::new(), "{name}");
        cel(&named(&name)).unwrap_or_else(|e| panic!("CEL rejected {name}: {e}"));
    }
}

#[test]
fn names_that_break_the_rule_are_rejected_by_rust_and_cel() {
    for name in [
        String::new(),
        "a".repeat(49),
        "-sink".to_string(),
        "Orders".to_string(),
        "orders_sink".to_string(),
    ] {
        assert_eq!(
            rust_errors(&named(&name)),
            vec!["metadata.name"],
            "{name:?}"
        );
        let err = cel(&named(&name)).expect_err(&format!("CEL accepted {name:?}"));
        assert!(err.contains("metadata.name must be 1-48"), "{err}");
    }
}

/// One broken field per case: Rust must name it, and the CRD's CEL rules must reject it too
/// where the rule is expressible in the schema (`cel_message`).
struct Case {
    what: &'static str,
    path: &'static str,
    value: Value,
    field: &'static str,
    cel_message: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "concurrency 4",
            path: "spec.source.concurrency",
            value: json!(4),
            field: "spec.source.concurrency",
            cel_message: None, // an enum in the schema, checked by schema_lists_allowed_concurrency
        },
        Case {
            what: "offset topic with the wrong prefix",
            path: "spec.runtime.topics.offset",
            value: json!({"name": "offsets-orders"}),
            field: "spec.runtime.topics.offset.name",
            cel_message: Some("offset topic name must start with connect-offset"),
        },
        Case {
            what: "error topic with the wrong prefix",
            path: "spec.runtime.topics.error",
            value: json!({"name": "connect-status-x"}),
            field: "spec.runtime.topics.error.name",
            cel_message: Some("error topic name must start with connect-error"),
        },
        Case {
            what: "config topic with 2 partitions",
            path: "spec.runtime.topics.config",
            value: json!({"partitions": 2}),
            field: "spec.runtime.topics.config.partitions",
            cel_message: Some("config topic must have exactly 1 partition"),
        },
        Case {
            what: "offset topic with 1 partition",
            path: "spec.runtime.topics.offset",
            value: json!({"partitions": 1}),
            field: "spec.runtime.topics.offset.partitions",
            cel_message: Some("offset topic needs more than 1 partition"),
        },
        Case {
            what: "Upsert without primaryKey",
            path: "spec.write",
            value: json!({"writeMode": "Upsert"}),
            field: "spec.write.primaryKey",
            cel_message: Some("write.primaryKey is required when writeMode is Upsert"),
        },
        Case {
            what: "both password and passwordSecretRef",
            path: "spec.destination.password",
            value: json!("hunter2"),
            field: "spec.destination.password",
            cel_message: Some("set password or passwordSecretRef, not both"),
        },
        Case {
            what: "MySQL batch over 16 MiB",
            path: "spec.write",
            value: json!({"maxBatchBytes": 32 * 1024 * 1024}),
            field: "spec.write.maxBatchBytes",
            cel_message: Some("write.maxBatchBytes must be at most 16 MiB"),
        },
        Case {
            what: "exactlyOnce on MySQL",
            path: "spec.write",
            value: json!({"exactlyOnce": true}),
            field: "spec.write.exactlyOnce",
            cel_message: Some("write.exactlyOnce is supported on AnalyticDBForPostgreSQL only"),
        },
        Case {
            what: "DebeziumJson in Insert mode (deletes default to Apply)",
            path: "spec.write",
            value: json!({"format": "DebeziumJson"}),
            field: "spec.write.deletes",
            cel_message: Some("write.deletes Apply needs writeMode Upsert"),
        },
        Case {
            what: "Json tombstones applied in Insert mode",
            path: "spec.write",
            value: json!({"deletes": "Apply"}),
            field: "spec.write.deletes",
            cel_message: Some("write.deletes Apply needs writeMode Upsert"),
        },
        Case {
            what: "primary key from the record key in Insert mode",
            path: "spec.write",
            value: json!({"primaryKeySource": "Key"}),
            field: "spec.write.primaryKeySource",
            cel_message: Some("write.primaryKeySource Key needs writeMode Upsert"),
        },
        Case {
            what: "CanalJson with the key from the record key",
            path: "spec.write",
            value: json!({"format": "CanalJson", "writeMode": "Upsert", "primaryKey": ["id"], "primaryKeySource": "Key"}),
            field: "spec.write.primaryKeySource",
            cel_message: Some("write.primaryKeySource Key does not apply to CanalJson"),
        },
        Case {
            what: "sourceTable with Json",
            path: "spec.write",
            value: json!({"sourceTable": "orders"}),
            field: "spec.write.sourceTable",
            cel_message: Some("write.sourceTable applies to DebeziumJson and CanalJson only"),
        },
    ]
}

#[test]
fn each_broken_field_is_named_by_rust_and_rejected_by_cel() {
    for case in cases() {
        let mut object = minimal();
        set(&mut object, case.path, case.value);
        assert_eq!(rust_errors(&object), vec![case.field], "{}", case.what);
        match case.cel_message {
            Some(message) => {
                let err = cel(&object).expect_err(case.what);
                assert!(err.contains(message), "{}: {err}", case.what);
            }
            None => cel(&object).unwrap_or_else(|e| panic!("{}: {e}", case.what)),
        }
    }
}

#[test]
fn no_password_at_all_is_rejected() {
    let mut object = minimal();
    object["spec"]["destination"]
        .as_object_mut()
        .expect("destination")
        .remove("passwordSecretRef");
    assert_eq!(
        rust_errors(&object),
        vec!["spec.destination.passwordSecretRef"]
    );
    assert!(cel(&object).is_err());
}

#[test]
fn dead_letter_and_error_may_share_a_topic_but_status_may_not() {
    let mut object = minimal();
    set(
        &mut object,
        "spec.runtime.topics.deadLetter",
        json!({"name": "connect-error-shared"}),
    );
    set(
        &mut object,
        "spec.runtime.topics.error",
        json!({"name": "connect-error-shared"}),
    );
    assert_eq!(rust_errors(&object), Vec::<String>::new());

    set(
        &mut object,
        "spec.runtime.topics.status",
        json!({"name": "connect-status-x"}),
    );
    set(
        &mut object,
        "spec.runtime.topics.offset",
        json!({"name": "connect-offset-x"}),
    );
    set(
        &mut object,
        "spec.runtime.topics.config",
        json!({"name": "connect-offset-x"}),
    );
    assert_eq!(
        rust_errors(&object),
        vec![
            "spec.runtime.topics.config.name",
            "spec.runtime.topics.config.name"
        ],
        "wrong prefix and a clash with the offset topic"
    );
}

#[test]
fn an_error_partition_count_the_shared_topic_would_drop_is_rejected() {
    // Both default to connect-error-<name>, created once with the dead-letter settings.
    let mut object = minimal();
    set(
        &mut object,
        "spec.runtime.topics.error",
        json!({"partitions": 12}),
    );
    assert_eq!(
        rust_errors(&object),
        vec!["spec.runtime.topics.error.partitions"]
    );
    let err = validate(&parse(&object)).expect_err("invalid").to_string();
    assert!(
        err.contains("differs from the dead-letter topic's 6"),
        "{err}"
    );

    set(
        &mut object,
        "spec.runtime.topics.deadLetter",
        json!({"partitions": 12}),
    );
    assert_eq!(rust_errors(&object), Vec::<String>::new(), "same count");

    set(
        &mut object,
        "spec.runtime.topics.error",
        json!({"name": "connect-error-own", "partitions": 3}),
    );
    assert_eq!(
        rust_errors(&object),
        Vec::<String>::new(),
        "a topic of its own"
    );
}

#[test]
fn bootstrap_servers_must_be_host_port() {
    let mut object = minimal();
    set(
        &mut object,
        "spec.source.bootstrapServers",
        json!("broker-1:9092,broker-2"),
    );
    assert_eq!(rust_errors(&object), vec!["spec.source.bootstrapServers"]);
}

#[test]
fn every_error_is_reported_at_once() {
    let mut object = named("Bad");
    set(&mut object, "spec.source.concurrency", json!(5));
    set(&mut object, "spec.write", json!({"writeMode": "Upsert"}));
    let err = validate(&parse(&object)).expect_err("invalid");
    let text = err.to_string();
    for field in [
        "metadata.name",
        "spec.source.concurrency",
        "spec.write.primaryKey",
    ] {
        assert!(text.contains(field), "{text}");
    }
}

#[test]
fn change_stream_settings_pass_rust_and_cel() {
    for write in [
        json!({"format": "DebeziumJson", "writeMode": "Upsert", "primaryKey": ["id"]}),
        json!({"format": "DebeziumJson", "writeMode": "Upsert", "primaryKey": ["id"], "primaryKeySource": "Key", "sourceTable": "shop.orders"}),
        json!({"format": "CanalJson", "writeMode": "Upsert", "primaryKey": ["id"], "deletes": "Apply", "sourceTable": "*"}),
        json!({"format": "CanalJson", "deletes": "Ignore"}),
        json!({"writeMode": "Upsert", "primaryKey": ["id"], "deletes": "Apply", "primaryKeySource": "Key"}),
        json!({"deletes": "Ignore"}),
    ] {
        let mut object = minimal();
        set(&mut object, "spec.write", write.clone());
        assert_eq!(rust_errors(&object), Vec::<String>::new(), "{write}");
        cel(&object).unwrap_or_else(|e| panic!("CEL rejected {write}: {e}"));
    }
}
