//! The manifests under examples/ are what users copy first: they must parse and validate.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use adbsink_crd::{AnalyticDBSink, InstanceType, from_yaml, validate};
use k8s_openapi::api::core::v1::Secret;

fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn sink(name: &str) -> AnalyticDBSink {
    let sink = from_yaml(&example(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    validate(&sink).unwrap_or_else(|e| panic!("{name}: {e}"));
    sink
}

#[test]
fn mysql_example_is_valid() {
    let sink = sink("mysql-sink.yaml");
    assert_eq!(
        sink.spec.destination.instance_type,
        InstanceType::AnalyticDBForMySQL
    );
    assert_eq!(sink.spec.destination.port_or_default(), 3306);
}

#[test]
fn postgres_example_is_valid_and_defaults_its_port() {
    let sink = sink("postgres-sink.yaml");
    assert_eq!(
        sink.spec.destination.instance_type,
        InstanceType::AnalyticDBForPostgreSQL
    );
    assert_eq!(sink.spec.destination.port_or_default(), 5432);
}

#[test]
fn examples_reference_the_example_secret() {
    let secret: Secret = serde_yaml::from_str(&example("secret.yaml")).expect("secret parses");
    let name = secret.metadata.name.expect("secret name");
    let keys = secret.string_data.expect("stringData");
    for file in ["mysql-sink.yaml", "postgres-sink.yaml"] {
        let reference = sink(file)
            .spec
            .destination
            .password_secret_ref
            .expect("secret ref");
        assert_eq!(reference.name, name, "{file}");
        assert!(keys.contains_key(&reference.key), "{file}");
    }
}

#[test]
fn change_stream_examples_are_valid_and_apply_deletes() {
    use adbsink_crd::{Deletes, MessageFormat};
    for (file, format) in [
        ("debezium-sink.yaml", MessageFormat::DebeziumJson),
        ("canal-sink.yaml", MessageFormat::CanalJson),
    ] {
        let sink = sink(file);
        assert_eq!(sink.spec.write.format, format, "{file}");
        assert_eq!(sink.spec.write.deletes(), Deletes::Apply, "{file}");
    }
}
