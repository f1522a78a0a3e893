use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration,
};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::defaults::*;
use crate::status::AnalyticDBSinkStatus;

/// Streams the JSON messages of one Kafka topic into one table of AnalyticDB for MySQL or
/// AnalyticDB for PostgreSQL: each JSON key is a column name, each value the column's data.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "adbsink.io",
    version = "v1alpha1",
    kind = "AnalyticDBSink",
    plural = "analyticdbsinks",
    singular = "analyticdbsink",
    shortname = "adbsink",
    category = "adbsink",
    namespaced,
    status = "AnalyticDBSinkStatus",
    derive = "PartialEq",
    doc = "Streams the JSON messages of a Kafka topic into an AnalyticDB for MySQL or AnalyticDB for PostgreSQL table.",
    validation = Rule::new("size(self.metadata.name) <= 48 && self.metadata.name.matches('^[a-z0-9][a-z0-9-]*$')")
        .message("metadata.name must be 1-48 lowercase letters, digits or hyphens and must not start with a hyphen"),
    // GitOps tools re-apply the manifest with its inline password after the operator moved it:
    // the password and the operator's reference to <name>-credentials then stand side by side
    // until the operator moves the password again.
    validation = Rule::new("!has(self.spec.destination.password) || !has(self.spec.destination.passwordSecretRef) || (self.spec.destination.passwordSecretRef.name == self.metadata.name + '-credentials' && self.spec.destination.passwordSecretRef.key == 'password')")
        .message("set password or passwordSecretRef, not both (both only while the operator moves a re-applied password into the Secret <name>-credentials)"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.destination.instanceType"),
    printcolumn(name = "Topic", type_ = "string", json_path = ".spec.source.topic"),
    printcolumn(name = "Table", type_ = "string", json_path = ".spec.destination.table"),
    printcolumn(name = "Concurrency", type_ = "integer", json_path = ".spec.source.concurrency"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Lag", type_ = "integer", json_path = ".status.lag"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("!has(self.write) || !has(self.write.writeMode) || self.write.writeMode != 'Upsert' || (has(self.write.primaryKey) && size(self.write.primaryKey) > 0)").message("write.primaryKey is required when writeMode is Upsert"))]
#[x_kube(validation = Rule::new("self.destination.instanceType != 'AnalyticDBForMySQL' || !has(self.write) || !has(self.write.maxBatchBytes) || self.write.maxBatchBytes <= 16777216").message("write.maxBatchBytes must be at most 16 MiB for AnalyticDBForMySQL"))]
#[x_kube(validation = Rule::new("self.destination.instanceType == 'AnalyticDBForPostgreSQL' || !has(self.write) || !has(self.write.exactlyOnce) || !self.write.exactlyOnce").message("write.exactlyOnce is supported on AnalyticDBForPostgreSQL only"))]
#[x_kube(validation = Rule::new("!has(self.write) || !((has(self.write.deletes) && self.write.deletes == 'Apply') || (!has(self.write.deletes) && has(self.write.format) && self.write.format != 'Json')) || (has(self.write.writeMode) && self.write.writeMode == 'Upsert')").message("write.deletes Apply needs writeMode Upsert (DebeziumJson and CanalJson apply deletes unless deletes is Ignore)"))]
#[x_kube(validation = Rule::new("!has(self.write) || !has(self.write.primaryKeySource) || self.write.primaryKeySource != 'Key' || (has(self.write.writeMode) && self.write.writeMode == 'Upsert')").message("write.primaryKeySource Key needs writeMode Upsert"))]
#[x_kube(validation = Rule::new("!has(self.write) || !has(self.write.primaryKeySource) || self.write.primaryKeySource != 'Key' || !has(self.write.format) || self.write.format != 'CanalJson'").message("write.primaryKeySource Key does not apply to CanalJson: each row of a Canal message carries its own key"))]
#[x_kube(validation = Rule::new("!has(self.write) || !has(self.write.sourceTable) || (has(self.write.format) && self.write.format != 'Json')").message("write.sourceTable applies to DebeziumJson and CanalJson only"))]
#[serde(rename_all = "camelCase")]
pub struct AnalyticDBSinkSpec {
    /// The Kafka topic to read and how to reach its brokers.
    pub source: SourceSpec,
    /// How the sink runs: failure policy, internal topics, consumer group.
    #[serde(default)]
    pub runtime: RuntimeSpec,
    /// The AnalyticDB instance and table the messages are written to.
    pub destination: DestinationSpec,
    /// How rows are written: insert or upsert, unknown keys, batch bounds.
    #[serde(default)]
    pub write: WriteSpec,
    /// Stops consumption (sink pods scaled to zero) without deleting anything. Setting it back to
    /// false resumes from the committed offsets.
    #[serde(default)]
    pub paused: bool,
    /// What happens to the internal topics and the consumer group this sink created when the
    /// resource is deleted: Retain keeps them, Delete removes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// At most this many consumer threads per sink pod. The operator runs the fewest pods that
    /// share the concurrency evenly within it (concurrency 12 at 5 a pod: 3 pods of 4 threads),
    /// so the threads always add up to the concurrency.
    #[serde(default = "default_threads_per_replica")]
    #[schemars(range(min = 1, max = 12))]
    pub threads_per_replica: u32,
    /// Image, resources and scheduling of the sink pods.
    #[serde(default, skip_serializing_if = "SinkTemplate::is_empty")]
    pub sink_template: SinkTemplate,
}

/// The Kafka side of the sink.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// Comma-separated `host:port` list of Kafka bootstrap brokers.
    #[schemars(length(min = 1))]
    pub bootstrap_servers: String,
    /// The topic whose messages are written to the table.
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    pub topic: String,
    /// Consumer threads in total across all sink pods: 1, 2, 3, 6 or 12. More threads than the
    /// topic has partitions leaves the extra threads idle.
    #[serde(default = "default_concurrency")]
    #[schemars(extend("enum" = [1, 2, 3, 6, 12]))]
    pub concurrency: u32,
    /// Where the sink starts when it creates its consumer group (resourceCreation Auto):
    /// Earliest (each partition's oldest message) or Latest (only messages produced after the
    /// group is created). It applies once: a partition that has no committed offset later (added
    /// to the topic, or its offset fell out of retention) starts at its oldest message, never
    /// skipping any. Under Manual, the group's own offsets decide.
    #[serde(default)]
    pub initial_offset: InitialOffset,
    /// SASL authentication to the brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslSpec>,
    /// TLS to the brokers. Present (even empty) means TLS is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTlsSpec>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InitialOffset {
    #[default]
    Earliest,
    Latest,
}

/// SASL mechanism and the Secret holding its username and password.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SaslSpec {
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: SaslMechanism,
    /// Secret in the sink's namespace with the SASL username and password.
    pub credentials_secret_ref: SaslCredentialsRef,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The name librdkafka expects in `sasl.mechanism`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SaslCredentialsRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key of the username in the Secret.
    #[serde(default = "default_sasl_username_key")]
    pub username_key: String,
    /// Key of the password in the Secret.
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

/// TLS settings for the Kafka connection.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTlsSpec {
    /// CA bundle from a Secret. Without a CA reference the system trust store is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<KeyRef>,
    /// CA bundle from a ConfigMap (mutually exclusive with caSecretRef).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_config_map_ref: Option<KeyRef>,
}

/// A key inside a Secret or ConfigMap in the sink's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// Name of the object.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key inside the object.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// How the sink runs, mirroring the managed connector's runtime settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSpec {
    /// Continue: a bad message goes to the dead-letter or error topic and consumption goes on.
    /// Stop: the task stops at the first bad message and commits nothing at or past it.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// Auto: the operator creates the internal topics and the consumer group.
    /// Manual: they must exist already; the operator only checks them.
    #[serde(default)]
    pub resource_creation: ResourceCreation,
    /// Consumer group of the sink. Default: connect-<name>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    pub consumer_group: Option<String>,
    /// The five internal topics. Every field is optional; names default to
    /// connect-{offset,config,status,error}-<name>.
    #[serde(default)]
    pub topics: InternalTopicsSpec,
    /// Replication factor of the topics the sink creates. Default: the broker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32767))]
    pub replication_factor: Option<i16>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    #[default]
    Continue,
    Stop,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResourceCreation {
    #[default]
    Auto,
    Manual,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
}

/// Names and partition counts of the internal topics.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InternalTopicsSpec {
    /// Committed offsets per partition (compacted). Name starts with connect-offset; more than 1
    /// partition. Default connect-offset-<name>, 12 partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.name) || self.name.startsWith('connect-offset')").message("offset topic name must start with connect-offset"))]
    #[x_kube(validation = Rule::new("!has(self.partitions) || self.partitions > 1").message("offset topic needs more than 1 partition"))]
    pub offset: Option<TopicSpec>,
    /// Effective runtime configuration (compacted). Name starts with connect-config; exactly 1
    /// partition. Default connect-config-<name>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.name) || self.name.startsWith('connect-config')").message("config topic name must start with connect-config"))]
    #[x_kube(validation = Rule::new("!has(self.partitions) || self.partitions == 1").message("config topic must have exactly 1 partition"))]
    pub config: Option<TopicSpec>,
    /// Task status records (compacted). Name starts with connect-status. Default
    /// connect-status-<name>, 6 partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.name) || self.name.startsWith('connect-status')").message("status topic name must start with connect-status"))]
    pub status: Option<TopicSpec>,
    /// Messages that could not be decoded. Name starts with connect-error. Default
    /// connect-error-<name>, 6 partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.name) || self.name.startsWith('connect-error')").message("dead-letter topic name must start with connect-error"))]
    pub dead_letter: Option<TopicSpec>,
    /// Messages the database rejected. Name starts with connect-error; may be the dead-letter
    /// topic. Default connect-error-<name>, 6 partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.name) || self.name.startsWith('connect-error')").message("error topic name must start with connect-error"))]
    pub error: Option<TopicSpec>,
}

/// One internal topic. Absent fields take the role's default.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// Topic name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    pub name: Option<String>,
    /// Partition count used when the sink creates the topic, and the minimum it checks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub partitions: Option<i32>,
}

/// The AnalyticDB side of the sink.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.password) || has(self.passwordSecretRef)").message("set password or passwordSecretRef"))]
#[serde(rename_all = "camelCase")]
pub struct DestinationSpec {
    /// AnalyticDBForMySQL (MySQL protocol) or AnalyticDBForPostgreSQL (PostgreSQL protocol).
    pub instance_type: InstanceType,
    /// ID of the AnalyticDB instance. Informational: shown in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Host name or address of the instance endpoint.
    #[schemars(length(min = 1))]
    pub host: String,
    /// Port of the instance endpoint. Default 3306 for MySQL, 5432 for PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Database name.
    #[schemars(length(min = 1, max = 64))]
    pub database: String,
    /// Schema of the table (PostgreSQL only). Default: public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub schema: Option<String>,
    /// Table the rows are written to. Its columns are read from information_schema.
    #[schemars(length(min = 1, max = 64))]
    pub table: String,
    /// Database user.
    #[schemars(length(min = 1))]
    pub username: String,
    /// Database password: the operator moves it into the Secret <name>-credentials and
    /// replaces it with passwordSecretRef before anything else. A manifest that carries it
    /// can be applied again (GitOps, server- or client-side): the password is moved again.
    /// Prefer passwordSecretRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Secret key holding the database password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<KeyRef>,
    /// TLS to the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<DatabaseTlsSpec>,
}

impl DestinationSpec {
    /// The port, or the protocol's well-known port when none is set.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.instance_type {
            InstanceType::AnalyticDBForMySQL => MYSQL_DEFAULT_PORT,
            InstanceType::AnalyticDBForPostgreSQL => POSTGRES_DEFAULT_PORT,
        })
    }

    /// The schema, or `public` on PostgreSQL. MySQL has no schemas below the database.
    pub fn schema_or_default(&self) -> Option<&str> {
        match self.instance_type {
            InstanceType::AnalyticDBForMySQL => None,
            InstanceType::AnalyticDBForPostgreSQL => {
                Some(self.schema.as_deref().unwrap_or("public"))
            }
        }
    }
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum InstanceType {
    AnalyticDBForMySQL,
    AnalyticDBForPostgreSQL,
}

/// TLS to the database.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseTlsSpec {
    /// Require: encrypt, do not verify. VerifyCa: verify the chain. VerifyFull: verify the chain
    /// and the host name.
    #[serde(default)]
    pub mode: DatabaseTlsMode,
    /// CA bundle used to verify the server (VerifyCa, VerifyFull).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<KeyRef>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DatabaseTlsMode {
    #[default]
    Require,
    VerifyCa,
    VerifyFull,
}

/// How rows are written.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WriteSpec {
    /// Insert appends every message as a row. Upsert: a message inserts the row of its primary
    /// key, or updates the columns it carries in the existing row and leaves the others as they
    /// are; messages apply in order, whatever the batch boundaries (INSERT ... ON DUPLICATE KEY
    /// UPDATE on MySQL, INSERT ... ON CONFLICT DO UPDATE on PostgreSQL). Replays after a
    /// restart are idempotent. A message without every primary key column, or with one null,
    /// goes to the error topic.
    #[serde(default)]
    pub write_mode: WriteMode,
    /// Primary key columns, required for Upsert.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    /// What to do with a JSON key that is not a column: Ignore drops the key, Fail sends the
    /// message to the error topic (or stops the sink under the Stop policy).
    #[serde(default)]
    pub unknown_fields: UnknownFields,
    /// Most rows in one write.
    #[serde(default = "default_max_batch_rows")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_batch_rows: u32,
    /// Most bytes of message values in one write. At most 16 MiB for AnalyticDB for MySQL.
    #[serde(default = "default_max_batch_bytes")]
    #[schemars(range(min = 1024, max = 67108864))]
    pub max_batch_bytes: u64,
    /// How long a partly filled batch waits for more messages before it is written. A batch
    /// is written sooner once no message has arrived for a tenth of this (the sink has read
    /// all there is for now).
    #[serde(default = "default_linger_ms")]
    #[schemars(range(max = 60000))]
    pub linger_ms: u64,
    /// PostgreSQL only: store the consumed offsets in a table of the destination database in the
    /// same transaction as the rows and resume from it (records the table already holds are
    /// skipped and the consumer seeks past them), so no message is written twice.
    #[serde(default)]
    pub exactly_once: bool,
    /// What a message value holds.
    /// Json (default): a flat object, each key a column, e.g. {"id": 1, "name": "a"}.
    /// DebeziumJson: a Debezium change event, with or without the schema/payload wrapper, e.g.
    /// {"op": "u", "before": {"id": 1, "name": "a"}, "after": {"id": 1, "name": "b"},
    /// "source": {"table": "orders"}}; op c, r and u write `after`, d deletes `before`'s key,
    /// t (truncate) and schema-change events are skipped and counted, and an update whose key
    /// changed deletes the old row.
    /// CanalJson: Canal's flat message, e.g. {"type": "UPDATE", "table": "orders", "isDdl":
    /// false, "pkNames": ["id"], "data": [{"id": "1", "name": "b"}], "old": [{"name": "a"}]};
    /// INSERT and UPDATE write each row of `data`, DELETE deletes each row's key, an `old`
    /// holding a key column deletes the old row first, DDL (isDdl) is skipped and counted.
    #[serde(default, skip_serializing_if = "is_default")]
    pub format: MessageFormat,
    /// Upsert: where the primary key columns are read. Value (default): from the message value
    /// (for DebeziumJson, from `after`, or `before` for a delete). Key: from the record key, a
    /// JSON object such as {"id": 1} (with or without Debezium's schema/payload wrapper), or a
    /// bare JSON number or string for a one-column key, as Kafka Connect's pk.mode=record_key;
    /// the key's values override the value's.
    #[serde(default, skip_serializing_if = "is_default")]
    pub primary_key_source: PrimaryKeySource,
    /// Apply: a delete event (DebeziumJson op d, CanalJson DELETE) deletes the row of its key;
    /// with Json, a tombstone (null value with a key such as {"id": 1}) deletes the row of its
    /// key. Needs writeMode Upsert. Ignore: deletes and tombstones are skipped and counted
    /// (status.recordsSkipped). Default: Apply for DebeziumJson and CanalJson, Ignore for Json.
    /// Whatever the batch boundaries, each key ends in the state of its last event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes: Option<Deletes>,
    /// DebeziumJson and CanalJson: the source table whose change events this sink applies, as
    /// `table` or `database.table` (`schema.table` for PostgreSQL sources); events of other
    /// tables are skipped and counted. `*` applies every table's events. Default: the
    /// destination table's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub source_table: Option<String>,
}

impl WriteSpec {
    /// Whether delete events and tombstones delete rows.
    pub fn deletes(&self) -> Deletes {
        self.deletes.unwrap_or(match self.format {
            MessageFormat::Json => Deletes::Ignore,
            MessageFormat::DebeziumJson | MessageFormat::CanalJson => Deletes::Apply,
        })
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MessageFormat {
    #[default]
    Json,
    DebeziumJson,
    CanalJson,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrimaryKeySource {
    #[default]
    Value,
    Key,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletes {
    Ignore,
    Apply,
}

impl Default for WriteSpec {
    fn default() -> Self {
        Self {
            write_mode: WriteMode::default(),
            primary_key: Vec::new(),
            unknown_fields: UnknownFields::default(),
            max_batch_rows: default_max_batch_rows(),
            max_batch_bytes: default_max_batch_bytes(),
            linger_ms: default_linger_ms(),
            exactly_once: false,
            format: MessageFormat::default(),
            primary_key_source: PrimaryKeySource::default(),
            deletes: None,
            source_table: None,
        }
    }
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteMode {
    #[default]
    Insert,
    Upsert,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownFields {
    Ignore,
    #[default]
    Fail,
}

/// Overrides for the sink pods.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SinkTemplate {
    /// Runtime image. Default: the operator's configured sink image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Always, IfNotPresent or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Secrets for pulling the runtime image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// CPU and memory of each sink container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the sink pods must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the sink pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity rules of the sink pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Extra labels on the sink pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on the sink pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl SinkTemplate {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}
