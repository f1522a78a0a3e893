//! The same rules the CRD schema enforces, plus the cross-field ones, checked in Rust so that
//! standalone mode (no API server) and the operator (which must never trust a CR blindly) agree.

use crate::defaults::*;
use crate::error::{Error, FieldError};
use crate::spec::*;
use crate::topics::{InternalTopic, TopicRole};

/// Validates a whole resource: its name and its spec. Returns every problem, not just the first.
pub fn validate(sink: &AnalyticDBSink) -> Result<(), Error> {
    let mut errors = Vec::new();
    match sink.metadata.name.as_deref() {
        Some(name) => {
            if let Err(e) = validate_name(name) {
                errors.push(e);
            }
            errors.extend(validate_spec(name, &sink.spec));
        }
        None => errors.push(FieldError::new("metadata.name", "is required")),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// The managed product's naming rule: 1-48 characters of lowercase letters, digits and hyphens,
/// not starting with a hyphen.
pub fn validate_name(name: &str) -> Result<(), FieldError> {
    let field = "metadata.name";
    if name.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(FieldError::new(
            field,
            format!(
                "must be at most {MAX_NAME_LEN} characters, got {}",
                name.len()
            ),
        ));
    }
    if name.starts_with('-') {
        return Err(FieldError::new(field, "must not start with a hyphen"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(FieldError::new(
            field,
            format!("may contain only lowercase letters, digits and hyphens, found {c:?}"),
        ));
    }
    Ok(())
}

/// Validates a spec for the sink called `name`; an empty result means valid.
pub fn validate_spec(name: &str, spec: &AnalyticDBSinkSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    source(&spec.source, &mut errors);
    runtime(name, spec, &mut errors);
    destination(name, &spec.destination, &mut errors);
    write(&spec.write, spec.destination.instance_type, &mut errors);
    if !(1..=MAX_THREADS_PER_REPLICA).contains(&spec.threads_per_replica) {
        errors.push(FieldError::new(
            "spec.threadsPerReplica",
            format!("must be between 1 and {MAX_THREADS_PER_REPLICA}"),
        ));
    }
    errors
}

fn source(source: &SourceSpec, errors: &mut Vec<FieldError>) {
    let servers: Vec<&str> = source
        .bootstrap_servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() {
        errors.push(FieldError::new(
            "spec.source.bootstrapServers",
            "must list at least one host:port",
        ));
    }
    for server in servers {
        let port_ok = server.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok {
            errors.push(FieldError::new(
                "spec.source.bootstrapServers",
                format!("{server:?} is not host:port"),
            ));
        }
    }
    if let Err(why) = topic_name(&source.topic) {
        errors.push(FieldError::new("spec.source.topic", why));
    }
    if !ALLOWED_CONCURRENCY.contains(&source.concurrency) {
        errors.push(FieldError::new(
            "spec.source.concurrency",
            format!(
                "must be one of {ALLOWED_CONCURRENCY:?}, got {}",
                source.concurrency
            ),
        ));
    }
    if let Some(sasl) = &source.sasl
        && sasl.credentials_secret_ref.name.is_empty()
    {
        errors.push(FieldError::new(
            "spec.source.sasl.credentialsSecretRef.name",
            "must not be empty",
        ));
    }
    if let Some(tls) = &source.tls
        && tls.ca_secret_ref.is_some()
        && tls.ca_config_map_ref.is_some()
    {
        errors.push(FieldError::new(
            "spec.source.tls",
            "set caSecretRef or caConfigMapRef, not both",
        ));
    }
}

fn runtime(name: &str, spec: &AnalyticDBSinkSpec, errors: &mut Vec<FieldError>) {
    let runtime = &spec.runtime;
    if let Some(group) = &runtime.consumer_group
        && group.trim().is_empty()
    {
        errors.push(FieldError::new(
            "spec.runtime.consumerGroup",
            "must not be empty",
        ));
    }
    if runtime.replication_factor.is_some_and(|rf| rf < 1) {
        errors.push(FieldError::new(
            "spec.runtime.replicationFactor",
            "must be at least 1",
        ));
    }
    let topics: Vec<InternalTopic> = TopicRole::ALL
        .iter()
        .map(|role| InternalTopic::resolve(*role, name, runtime))
        .collect();
    for topic in &topics {
        let field = format!("spec.runtime.topics.{}", topic.role.field());
        if let Err(why) = topic_name(&topic.name) {
            errors.push(FieldError::new(format!("{field}.name"), why));
        } else if !topic.name.starts_with(topic.role.prefix()) {
            errors.push(FieldError::new(
                format!("{field}.name"),
                format!("{:?} must start with {:?}", topic.name, topic.role.prefix()),
            ));
        }
        if let Err(why) = topic.role.check_partitions(topic.partitions) {
            errors.push(FieldError::new(
                format!("{field}.partitions"),
                format!("{why}, got {}", topic.partitions),
            ));
        }
        if topic.name == spec.source.topic {
            errors.push(FieldError::new(
                format!("{field}.name"),
                "must differ from the source topic",
            ));
        }
    }
    // Only dead-letter and error may share a topic: the others are compacted and keyed
    // differently, so sharing would overwrite one role's records with another's.
    for (i, a) in topics.iter().enumerate() {
        for b in &topics[i + 1..] {
            let may_share = matches!((a.role, b.role), (TopicRole::DeadLetter, TopicRole::Error));
            if a.name == b.name && !may_share {
                errors.push(FieldError::new(
                    format!("spec.runtime.topics.{}.name", b.role.field()),
                    format!("{:?} is already the {} topic", b.name, a.role.field()),
                ));
            }
        }
    }
    // By default they do share one (`connect-error-<name>`), which is created once with the
    // dead-letter settings: an error partition count of its own would be dropped unseen.
    let role = |role| topics.iter().find(|t| t.role == role);
    if let (Some(dead_letter), Some(error)) = (role(TopicRole::DeadLetter), role(TopicRole::Error))
        && dead_letter.name == error.name
        && dead_letter.partitions != error.partitions
    {
        errors.push(FieldError::new(
            "spec.runtime.topics.error.partitions",
            format!(
                "{} differs from the dead-letter topic's {}, and both are {:?}: set the same \
                 count on both, or give the error topic a name of its own",
                error.partitions, dead_letter.partitions, error.name
            ),
        ));
    }
}

fn destination(name: &str, dest: &DestinationSpec, errors: &mut Vec<FieldError>) {
    for (field, value) in [
        ("host", &dest.host),
        ("database", &dest.database),
        ("table", &dest.table),
        ("username", &dest.username),
    ] {
        if value.trim().is_empty() {
            errors.push(FieldError::new(
                format!("spec.destination.{field}"),
                "must not be empty",
            ));
        }
    }
    if dest.port == Some(0) {
        errors.push(FieldError::new("spec.destination.port", "must be 1-65535"));
    }
    match (&dest.password, &dest.password_secret_ref) {
        // A re-applied inline password beside the operator's reference: it is moved again.
        (Some(_), Some(r))
            if r.name == crate::credentials_secret_name(name)
                && r.key == crate::SECRET_KEY_DB_PASSWORD => {}
        (Some(_), Some(_)) => errors.push(FieldError::new(
            "spec.destination.password",
            "set password or passwordSecretRef, not both",
        )),
        (None, None) => errors.push(FieldError::new(
            "spec.destination.passwordSecretRef",
            "set password or passwordSecretRef",
        )),
        _ => {}
    }
    if dest.schema.is_some() && dest.instance_type == InstanceType::AnalyticDBForMySQL {
        errors.push(FieldError::new(
            "spec.destination.schema",
            "applies to AnalyticDBForPostgreSQL only",
        ));
    }
}

fn write(write: &WriteSpec, instance: InstanceType, errors: &mut Vec<FieldError>) {
    if write.write_mode == WriteMode::Upsert && write.primary_key.is_empty() {
        errors.push(FieldError::new(
            "spec.write.primaryKey",
            "is required when writeMode is Upsert",
        ));
    }
    for (i, column) in write.primary_key.iter().enumerate() {
        if column.is_empty() {
            errors.push(FieldError::new(
                format!("spec.write.primaryKey[{i}]"),
                "must not be empty",
            ));
        } else if write.primary_key[..i].contains(column) {
            errors.push(FieldError::new(
                format!("spec.write.primaryKey[{i}]"),
                format!("{column:?} is listed twice"),
            ));
        }
    }
    if !(1..=MAX_BATCH_ROWS).contains(&write.max_batch_rows) {
        errors.push(FieldError::new(
            "spec.write.maxBatchRows",
            format!("must be between 1 and {MAX_BATCH_ROWS}"),
        ));
    }
    let max_bytes = match instance {
        InstanceType::AnalyticDBForMySQL => MYSQL_MAX_BATCH_BYTES,
        InstanceType::AnalyticDBForPostgreSQL => MAX_BATCH_BYTES,
    };
    if !(MIN_BATCH_BYTES..=max_bytes).contains(&write.max_batch_bytes) {
        errors.push(FieldError::new(
            "spec.write.maxBatchBytes",
            format!("must be between {MIN_BATCH_BYTES} and {max_bytes} for {instance:?}"),
        ));
    }
    if write.linger_ms > MAX_LINGER_MS {
        errors.push(FieldError::new(
            "spec.write.lingerMs",
            format!("must be at most {MAX_LINGER_MS}"),
        ));
    }
    let upsert = write.write_mode == WriteMode::Upsert;
    if write.deletes() == Deletes::Apply && !upsert {
        errors.push(FieldError::new(
            "spec.write.deletes",
            "Apply needs writeMode Upsert (DebeziumJson and CanalJson apply deletes unless deletes is Ignore)",
        ));
    }
    if write.primary_key_source == PrimaryKeySource::Key {
        if !upsert {
            errors.push(FieldError::new(
                "spec.write.primaryKeySource",
                "Key needs writeMode Upsert",
            ));
        }
        if write.format == MessageFormat::CanalJson {
            errors.push(FieldError::new(
                "spec.write.primaryKeySource",
                "Key does not apply to CanalJson: each row of a Canal message carries its own key",
            ));
        }
    }
    match &write.source_table {
        Some(_) if write.format == MessageFormat::Json => errors.push(FieldError::new(
            "spec.write.sourceTable",
            "applies to DebeziumJson and CanalJson only",
        )),
        Some(table) if table.is_empty() || table.len() > 256 => errors.push(FieldError::new(
            "spec.write.sourceTable",
            "must be 1-256 characters",
        )),
        _ => {}
    }
    if write.exactly_once && instance != InstanceType::AnalyticDBForPostgreSQL {
        errors.push(FieldError::new(
            "spec.write.exactlyOnce",
            "is supported on AnalyticDBForPostgreSQL only; use writeMode Upsert for idempotent replays on MySQL",
        ));
    }
}

/// Kafka's own rule for topic names.
fn topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err("must be 1-249 characters".into());
    }
    if name == "." || name == ".." {
        return Err("must not be . or ..".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "may contain only letters, digits, '.', '_' and '-', found {c:?}"
        ));
    }
    Ok(())
}
