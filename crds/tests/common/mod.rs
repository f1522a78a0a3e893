#![allow(dead_code)]
#![allow(clippy::expect_used, clippy::unwrap_used)]

use adbsink_crd::AnalyticDBSink;
use kube::CustomResourceExt;
use serde_json::{Value, json};

/// The smallest valid sink: every optional field left to its default.
pub fn minimal() -> Value {
    json!({
        "apiVersion": "adbsink.io/v1alpha1",
        "kind": "AnalyticDBSink",
        "metadata": {"name": "orders", "namespace": "default"},
        "spec": {
            "source": {"bootstrapServers": "127.0.0.1:9092", "topic": "orders"},
            "destination": {
                "instanceType": "AnalyticDBForMySQL",
                "host": "db.example",
                "database": "shop",
                "table": "orders",
                "username": "writer",
                "passwordSecretRef": {"name": "db", "key": "password"}
            }
        }
    })
}

pub fn parse(value: &Value) -> AnalyticDBSink {
    serde_json::from_value(value.clone()).expect("manifest deserializes")
}

/// The CRD's openAPIV3Schema as JSON.
pub fn schema() -> Value {
    let crd = AnalyticDBSink::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    serde_json::to_value(schema).expect("schema to json")
}

/// What an API server would do with the object's CEL rules, after applying schema defaults.
pub fn cel(object: &Value) -> Result<(), String> {
    kube::core::cel::Validator::new()
        .validate_with_defaults(&schema(), object, None)
        .map_err(|e| format!("{e:?}"))
}

/// Sets `value` at a dotted path inside `object`, creating objects on the way.
pub fn set(object: &mut Value, path: &str, value: Value) {
    let mut cur = object;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        cur = cur
            .as_object_mut()
            .expect("object")
            .entry(part.to_string())
            .or_insert_with(|| json!({}));
    }
    cur[parts[parts.len() - 1]] = value;
}
