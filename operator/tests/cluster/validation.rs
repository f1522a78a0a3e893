//! The API server itself refuses every spec the CRD forbids. The cases are derived from the
//! CRD: one per enum, bound, length and pattern in `spec`, and one per CEL rule (a rule added
//! without a case here fails the test). Requests are server-side dry runs: validated and
//! admitted like real ones, stored never.

use std::collections::BTreeSet;

use adbsink_crd::AnalyticDBSink;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::{CustomResourceExt, Resource};
use serde_json::{Value, json};

use crate::harness::{Cluster, eventually};

fn valid(name: &str) -> Value {
    json!({
        "apiVersion": AnalyticDBSink::api_version(&()),
        "kind": AnalyticDBSink::kind(&()),
        "metadata": {"name": name},
        "spec": {
            "source": {"bootstrapServers": "127.0.0.1:9092", "topic": "orders"},
            "destination": {
                "instanceType": "AnalyticDBForPostgreSQL", "host": "db.example",
                "database": "shop", "table": "orders", "username": "writer",
                "passwordSecretRef": {"name": "db", "key": "password"}
            }
        }
    })
}

/// A value the schema accepts, filling the required fields of objects on the way to a case.
fn filler(schema: &Value) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match schema["type"].as_str() {
        Some("object") => {
            let mut object = serde_json::Map::new();
            for required in schema["required"].as_array().into_iter().flatten() {
                let field = required.as_str().unwrap();
                object.insert(field.into(), filler(&schema["properties"][field]));
            }
            Value::Object(object)
        }
        Some("integer") => json!(schema["minimum"].as_f64().unwrap_or(1.0).max(1.0) as i64),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        _ => json!("x"),
    }
}

struct Case {
    what: String,
    object: Value,
    /// What the API server's message must contain.
    expect: String,
}

/// Sets `value` at `path` (object keys) inside the valid sink, filling parents as the schema
/// requires.
fn at(path: &[String], schemas: &[Value], value: Value) -> Value {
    let mut object = valid("sink");
    let mut cur = &mut object;
    for (i, key) in path.iter().enumerate() {
        if i + 1 == path.len() {
            cur[key.as_str()] = value;
            break;
        }
        if cur.get(key.as_str()).is_none() {
            cur[key.as_str()] = filler(&schemas[i + 1]);
        }
        cur = &mut cur[key.as_str()];
    }
    object
}

/// One case per enum, bound, length and pattern under `spec`.
fn schema_cases(schema: &Value, path: &mut Vec<String>, schemas: &mut Vec<Value>) -> Vec<Case> {
    let mut cases = Vec::new();
    let dotted = path.join(".");
    let mut case = |what: &str, value: Value| {
        cases.push(Case {
            what: format!("{dotted}: {what}"),
            object: at(path, schemas, value),
            expect: dotted.clone(),
        })
    };
    if let Some(allowed) = schema["enum"].as_array() {
        case(
            "not in the enum",
            if allowed[0].is_number() {
                json!(4)
            } else {
                json!("NotAllowed")
            },
        );
    }
    if let Some(min) = schema["minimum"].as_f64() {
        case("below the minimum", json!(min as i64 - 1));
    }
    if let Some(max) = schema["maximum"].as_f64() {
        case("above the maximum", json!(max as i64 + 1));
    }
    if schema["minLength"].as_u64().is_some_and(|n| n > 0) {
        case("too short", json!(""));
    }
    if let Some(max) = schema["maxLength"].as_u64() {
        case("too long", json!("a".repeat(max as usize + 1)));
    }
    if schema["pattern"].is_string() {
        case("against the pattern", json!("not a name!"));
    }
    for (key, child) in schema["properties"].as_object().into_iter().flatten() {
        path.push(key.clone());
        schemas.push(child.clone());
        cases.extend(schema_cases(child, path, schemas));
        path.pop();
        schemas.pop();
    }
    cases
}

fn cel_messages(schema: &Value, out: &mut BTreeSet<String>) {
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.insert(rule["message"].as_str().unwrap().to_string());
    }
    for child in schema["properties"].as_object().into_iter().flatten() {
        cel_messages(child.1, out);
    }
    if schema["items"].is_object() {
        cel_messages(&schema["items"], out);
    }
}

/// One object per CEL rule of the CRD, keyed by the rule's message.
fn cel_cases() -> Vec<(&'static str, Value)> {
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut object = valid("sink");
        edit(&mut object);
        object
    };
    let topic = |role: &'static str, topic: Value| {
        with(&move |o| o["spec"]["runtime"] = json!({"topics": {role: topic.clone()}}))
    };
    let mysql = |write: Value| {
        with(&move |o| {
            o["spec"]["destination"]["instanceType"] = json!("AnalyticDBForMySQL");
            o["spec"]["write"] = write.clone();
        })
    };
    vec![
        (
            "metadata.name must be 1-48 lowercase letters, digits or hyphens and must not start with a hyphen",
            with(&|o| o["metadata"]["name"] = json!("a".repeat(49))),
        ),
        (
            "set password or passwordSecretRef, not both (both only while the operator moves a re-applied password into the Secret <name>-credentials)",
            with(&|o| o["spec"]["destination"]["password"] = json!("hunter2")),
        ),
        (
            "set password or passwordSecretRef",
            with(&|o| {
                o["spec"]["destination"]
                    .as_object_mut()
                    .unwrap()
                    .remove("passwordSecretRef");
            }),
        ),
        (
            "write.primaryKey is required when writeMode is Upsert",
            with(&|o| o["spec"]["write"] = json!({"writeMode": "Upsert"})),
        ),
        (
            "write.maxBatchBytes must be at most 16 MiB for AnalyticDBForMySQL",
            mysql(json!({"maxBatchBytes": 32 * 1024 * 1024})),
        ),
        (
            "write.exactlyOnce is supported on AnalyticDBForPostgreSQL only",
            mysql(json!({"exactlyOnce": true})),
        ),
        (
            "write.deletes Apply needs writeMode Upsert (DebeziumJson and CanalJson apply deletes unless deletes is Ignore)",
            with(&|o| o["spec"]["write"] = json!({"format": "DebeziumJson"})),
        ),
        (
            "write.primaryKeySource Key needs writeMode Upsert",
            with(&|o| o["spec"]["write"] = json!({"primaryKeySource": "Key"})),
        ),
        (
            "write.primaryKeySource Key does not apply to CanalJson: each row of a Canal message carries its own key",
            with(&|o| {
                o["spec"]["write"] = json!({"format": "CanalJson", "writeMode": "Upsert",
                    "primaryKey": ["id"], "primaryKeySource": "Key"})
            }),
        ),
        (
            "write.sourceTable applies to DebeziumJson and CanalJson only",
            with(&|o| o["spec"]["write"] = json!({"sourceTable": "orders"})),
        ),
        (
            "config topic name must start with connect-config",
            topic("config", json!({"name": "configs"})),
        ),
        (
            "config topic must have exactly 1 partition",
            topic("config", json!({"partitions": 2})),
        ),
        (
            "dead-letter topic name must start with connect-error",
            topic("deadLetter", json!({"name": "dlq"})),
        ),
        (
            "error topic name must start with connect-error",
            topic("error", json!({"name": "errors"})),
        ),
        (
            "offset topic name must start with connect-offset",
            topic("offset", json!({"name": "offsets"})),
        ),
        (
            "offset topic needs more than 1 partition",
            topic("offset", json!({"partitions": 1})),
        ),
        (
            "status topic name must start with connect-status",
            topic("status", json!({"name": "statuses"})),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_refuses_every_spec_the_crd_forbids() {
    let Some(cluster) = Cluster::without_operator("validation").await else {
        return;
    };
    let api: Api<DynamicObject> = Api::namespaced_with(
        cluster.client.clone(),
        &cluster.namespace,
        &ApiResource::erase::<AnalyticDBSink>(&()),
    );
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let create = |object: Value| {
        let api = api.clone();
        let dry_run = dry_run.clone();
        async move {
            let object: DynamicObject = serde_json::from_value(object).unwrap();
            api.create(&dry_run, &object).await
        }
    };
    create(valid("sink"))
        .await
        .expect("the valid sink is accepted");
    for example in ["debezium-sink.yaml", "canal-sink.yaml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(example);
        let text = std::fs::read_to_string(&path).unwrap();
        let object = serde_json::to_value(adbsink_crd::from_yaml(&text).unwrap()).unwrap();
        create(object)
            .await
            .unwrap_or_else(|e| panic!("{example} refused: {e}"));
    }
    // `kubectl explain` documents the change formats with an example message each.
    let explained = eventually(&cluster, "kubectl explain of spec.write.format", || async {
        let out = cluster.kubectl(&["explain", "analyticdbsinks.spec.write.format"], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.contains("DebeziumJson")).then_some(text)
    })
    .await;
    for needle in ["CanalJson", "\"op\": \"u\"", "\"type\": \"UPDATE\""] {
        assert!(
            explained.contains(needle),
            "{needle} missing from\n{explained}"
        );
    }

    let crd = serde_json::to_value(AnalyticDBSink::crd()).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut cases = schema_cases(
        &root["properties"]["spec"],
        &mut vec!["spec".to_string()],
        &mut vec![root.clone(), root["properties"]["spec"].clone()],
    );
    let mut rules = BTreeSet::new();
    cel_messages(root, &mut rules);
    let covered: BTreeSet<String> = cel_cases().iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(
        rules, covered,
        "every CEL rule of the CRD needs a case here"
    );
    cases.extend(cel_cases().into_iter().map(|(message, object)| Case {
        what: format!("CEL: {message}"),
        object,
        expect: message.to_string(),
    }));
    assert!(cases.len() > 60, "only {} cases derived", cases.len());

    let mut accepted = Vec::new();
    for case in &cases {
        match create(case.object.clone()).await {
            Ok(_) => accepted.push(case.what.clone()),
            Err(kube::Error::Api(e)) => assert!(
                e.code == 422 && e.message.contains(&case.expect),
                "{}: refused for another reason: {} {}",
                case.what,
                e.code,
                e.message
            ),
            Err(e) => panic!("{}: {e}", case.what),
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
    cluster.finish().await;
}
