//! Fixtures for the builders' unit tests.

use adbsink_crd::AnalyticDBSink;

/// A valid MySQL sink `name` in namespace `ns`, with a uid (as if read from the API server) and
/// a password Secret reference.
pub fn sink(name: &str) -> AnalyticDBSink {
    let mut sink = adbsink_crd::from_yaml(&format!(
        r#"
apiVersion: adbsink.io/v1alpha1
kind: AnalyticDBSink
metadata: {{name: {name}, namespace: ns, uid: 0000-1111, generation: 3}}
spec:
  source: {{bootstrapServers: "kafka-0.kafka:9092,kafka-1.kafka:9093", topic: orders, concurrency: 6}}
  destination:
    instanceType: AnalyticDBForMySQL
    host: am-1.example.com
    database: shop
    table: orders
    username: writer
    passwordSecretRef: {{name: db, key: password}}
"#
    ))
    .unwrap_or_else(|e| panic!("fixture: {e}"));
    sink.metadata.creation_timestamp = None;
    sink
}
