//! Record → what it asks of the table: rows to write, keys to delete, or nothing (and why).
//! `write.format` says how to read a value: a flat JSON object (`Json`), a Debezium change
//! event (`DebeziumJson`) or a Canal flat message (`CanalJson`, which may carry many rows).
//! `write.primaryKeySource: Key` takes the key columns from the record key instead.
//!
//! Pure: the pipeline routes the errors and counts the skips.

use std::borrow::Cow;

use adbsink_crd::{Deletes, InstanceType, MessageFormat, PrimaryKeySource, UnknownFields};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::decode::{
    DecodeError, Row, check_key, decode, decode_columns, decode_object, value_text,
};
use crate::table::Table;

/// What one change does to the row of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Insert the row, or (Upsert) update the columns it carries.
    Write,
    /// Delete the row of the key the row carries.
    Delete,
}

/// One change of one record, in the order the record gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<'a> {
    pub op: Op,
    pub row: Row<'a>,
}

/// Why a record changes nothing. It is counted, and its offset committed like any other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// A tombstone: with `deletes: Ignore`, or after a Debezium delete (which deleted already).
    Tombstone,
    /// A delete event under `deletes: Ignore`.
    Delete,
    /// A change event of another table than `write.sourceTable`.
    OtherTable,
    /// A schema change: never applied. Holds the statement's first two words (`ALTER TABLE`)
    /// when the event carries one: only those, since a statement may hold a password.
    Ddl(Option<String>),
    /// Debezium's truncate: never applied.
    Truncate,
    /// Debezium's logical decoding message (op m): no row.
    Message,
}

impl Skip {
    /// The `reason` label of `adbsink_records_skipped_total`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Tombstone => "tombstone",
            Self::Delete => "delete-ignored",
            Self::OtherTable => "other-table",
            Self::Ddl(_) => "ddl",
            Self::Truncate => "truncate",
            Self::Message => "message",
        }
    }
}

/// What a record comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    Changes(Vec<Change<'a>>),
    Skipped(Skip),
}

/// Reads records against one table with the sink's write settings.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'t> {
    pub table: &'t Table,
    pub format: MessageFormat,
    pub key_source: PrimaryKeySource,
    pub deletes: Deletes,
    pub unknown: UnknownFields,
    pub instance: InstanceType,
    /// The primary key's columns; empty in Insert mode.
    pub primary_key: &'t [usize],
    /// The source table whose change events apply: `table`, `db.table`, or `*`.
    pub source_table: &'t str,
}

impl<'t> Reader<'t> {
    pub fn read<'a>(
        &self,
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
    ) -> Result<Decoded<'a>, DecodeError> {
        match self.format {
            MessageFormat::Json => self.json(key, value),
            MessageFormat::DebeziumJson => self.debezium(key, value),
            MessageFormat::CanalJson => self.canal(value),
        }
    }

    fn json<'a>(
        &self,
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
    ) -> Result<Decoded<'a>, DecodeError> {
        let Some(value) = value else {
            // A tombstone: a null value with a key. Without a key it is no record at all.
            if key.is_none() {
                return Err(DecodeError::Empty);
            }
            if self.deletes == Deletes::Ignore {
                return Ok(Decoded::Skipped(Skip::Tombstone));
            }
            let row = self.key_row(key)?;
            return Ok(one(Op::Delete, row));
        };
        let mut row = decode(Some(value), self.table, self.unknown, self.instance)?;
        if self.key_source == PrimaryKeySource::Key {
            self.overlay_key(&mut row, key)?;
        }
        check_key(&row, self.table, self.primary_key)?;
        Ok(one(Op::Write, row))
    }

    fn debezium<'a>(
        &self,
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
    ) -> Result<Decoded<'a>, DecodeError> {
        // Debezium follows each delete with a tombstone for log compaction; the delete did the work.
        let Some(value) = value else {
            return Ok(Decoded::Skipped(Skip::Tombstone));
        };
        let text = utf8(value)?;
        let mut envelope: Envelope<'a> = envelope(text)?;
        if envelope.op.is_none() {
            // The JSON converter's schema/payload wrapper.
            if let (Some(payload), true) = (envelope.payload.0, envelope.schema.0.is_some()) {
                if payload.get() == "null" {
                    return Ok(Decoded::Skipped(Skip::Tombstone));
                }
                envelope = self::envelope(payload.get())?;
            }
        }
        let Some(op) = envelope.op.as_deref() else {
            if envelope.ddl.is_some() || envelope.table_changes.0.is_some() {
                return Ok(Decoded::Skipped(Skip::Ddl(
                    envelope.ddl.as_deref().map(statement_kind),
                )));
            }
            return Err(malformed("no \"op\" field"));
        };
        if let Some(source) = &envelope.source
            && !self.applies(
                &[source.schema.as_deref(), source.db.as_deref()],
                source.table.as_deref(),
            )
        {
            return Ok(Decoded::Skipped(Skip::OtherTable));
        }
        // Of the before image only the key is used.
        let before_key = |raw: Raw<'a>| match raw.0 {
            Some(raw) if raw.get() != "null" => self.key_image(|| "before".into(), raw.get()),
            _ => Ok(None),
        };
        match op {
            "c" | "r" | "u" => {
                let mut row = match envelope.after.0 {
                    Some(raw) if raw.get() != "null" => self.image(|| "after".into(), raw.get())?,
                    _ => {
                        return Err(malformed(format!("op {op:?} without an \"after\" image")));
                    }
                };
                if self.key_source == PrimaryKeySource::Key {
                    self.overlay_key(&mut row, key)?;
                }
                self.check(&row)?;
                let mut changes = Vec::with_capacity(1);
                // An update that moved the row to another key deletes the old one.
                if op == "u"
                    && self.deletes == Deletes::Apply
                    && let Ok(Some(before)) = before_key(envelope.before)
                    && self.has_key(&before)
                    && !self.same_key(&before, &row)
                {
                    changes.push(Change {
                        op: Op::Delete,
                        row: before,
                    });
                }
                changes.push(Change { op: Op::Write, row });
                Ok(Decoded::Changes(changes))
            }
            "d" => {
                if self.deletes == Deletes::Ignore {
                    return Ok(Decoded::Skipped(Skip::Delete));
                }
                // The key from the record key when it is read from there, or when `before`
                // lacks it (PostgreSQL's REPLICA IDENTITY NOTHING); else from `before`.
                let before = match self.key_source {
                    PrimaryKeySource::Key => None,
                    PrimaryKeySource::Value => {
                        before_key(envelope.before)?.filter(|b| self.has_key(b))
                    }
                };
                let row = match before {
                    Some(row) => row,
                    None if key.is_some() || self.key_source == PrimaryKeySource::Key => {
                        self.key_row(key)?
                    }
                    None => {
                        return Err(malformed(
                            "a delete without a \"before\" image or record key holding the primary key",
                        ));
                    }
                };
                self.check(&row)?;
                Ok(one(Op::Delete, row))
            }
            "t" => Ok(Decoded::Skipped(Skip::Truncate)),
            "m" => Ok(Decoded::Skipped(Skip::Message)),
            other => Err(malformed(format!("unknown op {other:?}"))),
        }
    }

    fn canal<'a>(&self, value: Option<&'a [u8]>) -> Result<Decoded<'a>, DecodeError> {
        let value = value.filter(|v| !v.is_empty()).ok_or(DecodeError::Empty)?;
        let text = utf8(value)?;
        let flat: Flat<'a> = parse(text)?;
        if flat.is_ddl == Some(true) {
            return Ok(Decoded::Skipped(Skip::Ddl(
                flat.sql.as_deref().map(statement_kind),
            )));
        }
        let Some(kind) = flat.kind.as_deref() else {
            return Err(malformed("no \"type\" field"));
        };
        let op = match kind {
            "INSERT" | "UPDATE" => Op::Write,
            "DELETE" => Op::Delete,
            "CREATE" | "ALTER" | "ERASE" | "QUERY" | "TRUNCATE" | "RENAME" | "CINDEX"
            | "DINDEX" => {
                return Ok(Decoded::Skipped(Skip::Ddl(
                    flat.sql.as_deref().map(statement_kind),
                )));
            }
            other => return Err(malformed(format!("unknown type {other:?}"))),
        };
        if !self.applies(&[flat.database.as_deref()], flat.table.as_deref()) {
            return Ok(Decoded::Skipped(Skip::OtherTable));
        }
        if op == Op::Delete && self.deletes == Deletes::Ignore {
            return Ok(Decoded::Skipped(Skip::Delete));
        }
        let data = array("data", flat.data)?
            .ok_or_else(|| malformed(format!("a {kind} without \"data\"")))?;
        if data.is_empty() {
            return Err(malformed("\"data\" is empty"));
        }
        let old = match (kind, array("old", flat.old)?) {
            ("UPDATE", Some(old)) => old,
            _ => Vec::new(),
        };
        let mut changes = Vec::with_capacity(data.len());
        for (i, raw) in data.into_iter().enumerate() {
            let row = self.image(|| format!("data[{i}]"), raw.get())?;
            self.check(&row)?;
            // An `old` holding a key column: the update moved the row to another key.
            if let Some(old) = old.get(i).filter(|_| self.deletes == Deletes::Apply)
                && let Some(old) = self.key_image(|| format!("old[{i}]"), old.get())?
            {
                let previous: Row<'static> = self
                    .primary_key
                    .iter()
                    .map(|c| (*c, old.get(*c).or_else(|| row.get(*c)).flatten()))
                    .collect();
                if !self.same_key(&previous, &row) {
                    self.check(&previous)?;
                    changes.push(Change {
                        op: Op::Delete,
                        row: previous,
                    });
                }
            }
            changes.push(Change { op, row });
        }
        Ok(Decoded::Changes(changes))
    }

    /// A row image inside a change event; `name` names it in an error.
    fn image<'a>(
        &self,
        name: impl FnOnce() -> String,
        text: &'a str,
    ) -> Result<Row<'a>, DecodeError> {
        decode_object(text, self.table, self.unknown, self.instance)
            .map_err(|e| not_an_object_named(e, name))
    }

    /// The key columns of a row image (`before`, Canal's `old`), its other columns skipped
    /// unread; None when it holds no key column (or the sink has no key).
    fn key_image<'a>(
        &self,
        name: impl FnOnce() -> String,
        text: &'a str,
    ) -> Result<Option<Row<'a>>, DecodeError> {
        if self.primary_key.is_empty() {
            return Ok(None);
        }
        let only = Some(self.primary_key);
        match decode_columns(text, self.table, UnknownFields::Ignore, self.instance, only) {
            Ok(row) => Ok(Some(row)),
            Err(DecodeError::NoColumns) => Ok(None),
            Err(e) => Err(not_an_object_named(e, name)),
        }
    }

    /// Change formats: a row without its key is a malformed event, not a bad row.
    fn check(&self, row: &Row<'_>) -> Result<(), DecodeError> {
        check_key(row, self.table, self.primary_key).map_err(|e| match e {
            DecodeError::MissingKey(c) => malformed(format!("no primary key column {c:?}")),
            DecodeError::NullKey(c) => malformed(format!("primary key column {c:?} is null")),
            other => other,
        })
    }

    fn has_key(&self, row: &Row<'_>) -> bool {
        !self.primary_key.is_empty() && check_key(row, self.table, self.primary_key).is_ok()
    }

    fn same_key(&self, a: &Row<'_>, b: &Row<'_>) -> bool {
        self.primary_key.iter().all(|c| a.get(*c) == b.get(*c))
    }

    /// The primary key columns of the record key: a JSON object (optionally in the JSON
    /// converter's schema/payload wrapper), or a bare number or string for a one-column key.
    fn key_row<'a>(&self, key: Option<&'a [u8]>) -> Result<Row<'a>, DecodeError> {
        let invalid = DecodeError::InvalidKey;
        let key = key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| invalid("the record has no key".into()))?;
        let text = std::str::from_utf8(key).map_err(|e| invalid(format!("not UTF-8: {e}")))?;
        let mut text = text.trim();
        if text.starts_with('{') {
            let wrapper: Wrapper<'a> =
                serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
            if let (Some(payload), true) = (wrapper.payload.0, wrapper.schema.0.is_some()) {
                text = payload.get();
            }
        }
        let row = if text.starts_with('{') {
            decode_object(text, self.table, UnknownFields::Ignore, self.instance).map_err(|e| {
                match e {
                    DecodeError::NoColumns => invalid("no key is a column of the table".into()),
                    other => invalid(other.to_string()),
                }
            })?
        } else {
            let [column] = self.primary_key else {
                return Err(invalid(format!(
                    "{text:?} is no JSON object, and the primary key has {} columns",
                    self.primary_key.len()
                )));
            };
            serde_json::from_str::<&RawValue>(text)
                .map_err(|e| invalid(format!("not JSON: {e}")))?;
            let value =
                value_text(text, self.instance).map_err(|e| invalid(format!("not JSON: {e}")))?;
            let mut row = Row::default();
            row.push(*column, value.as_deref());
            row.finish();
            row
        };
        check_key(&row, self.table, self.primary_key).map_err(|e| invalid(e.to_string()))?;
        Ok(row)
    }

    /// `primaryKeySource: Key`: the record key's columns replace the value's.
    fn overlay_key<'a>(&self, row: &mut Row<'a>, key: Option<&'a [u8]>) -> Result<(), DecodeError> {
        let key = self.key_row(key)?;
        for column in self.primary_key {
            row.push(*column, key.get(*column).flatten());
        }
        row.finish();
        Ok(())
    }

    /// Whether events of `table` (qualified by one of `qualifiers`) apply to this sink.
    fn applies(&self, qualifiers: &[Option<&str>], table: Option<&str>) -> bool {
        let Some(table) = table else { return true };
        let wanted = self.source_table;
        wanted == "*"
            || wanted == table
            || qualifiers.iter().flatten().any(|q| {
                wanted
                    .strip_prefix(q)
                    .and_then(|rest| rest.strip_prefix('.'))
                    == Some(table)
            })
    }
}

/// `ALTER TABLE` of `alter table orders add x int`: what a DDL event did, without its details.
fn statement_kind(statement: &str) -> String {
    let mut words = statement
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    words.truncate(words.char_indices().nth(40).map_or(words.len(), |(i, _)| i));
    words.to_uppercase()
}

fn one(op: Op, row: Row<'_>) -> Decoded<'_> {
    Decoded::Changes(vec![Change { op, row }])
}

/// A row image that is no object is a malformed event, named by where it is.
fn not_an_object_named(error: DecodeError, name: impl FnOnce() -> String) -> DecodeError {
    match error {
        DecodeError::NotAnObject(kind) => {
            malformed(format!("{:?} is a JSON {kind}, not an object", name()))
        }
        other => other,
    }
}

fn malformed(reason: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(reason.into())
}

fn utf8(value: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(value).map_err(|e| DecodeError::NotUtf8(e.to_string()))
}

/// Parses an envelope: bad JSON is invalid JSON; JSON of the wrong shape is a malformed event.
fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, DecodeError> {
    if text.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(crate::decode::not_an_object(text));
    }
    serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            malformed(e.to_string())
        } else {
            DecodeError::InvalidJson(e.to_string())
        }
    })
}

fn envelope(text: &str) -> Result<Envelope<'_>, DecodeError> {
    parse(text)
}

/// A JSON array's elements, when the field is there and not null.
fn array<'a>(name: &str, raw: Raw<'a>) -> Result<Option<Vec<&'a RawValue>>, DecodeError> {
    match raw.0 {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) if raw.get().starts_with('[') => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|e| malformed(format!("{name:?}: {e}"))),
        Some(_) => Err(malformed(format!("{name:?} is not an array"))),
    }
}

/// A field's raw JSON when present, `null` included: a missing field and a null one differ.
#[derive(Debug, Default, Clone, Copy)]
struct Raw<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(deserializer).map(|raw| Raw(Some(raw)))
    }
}

/// A Debezium change event, or the JSON converter's wrapper around one.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    before: Raw<'a>,
    #[serde(borrow, default)]
    after: Raw<'a>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
    #[serde(borrow, default)]
    payload: Raw<'a>,
    #[serde(borrow, default)]
    schema: Raw<'a>,
    #[serde(borrow, default)]
    ddl: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "tableChanges")]
    table_changes: Raw<'a>,
}

#[derive(Deserialize)]
struct Source<'a> {
    #[serde(borrow, default)]
    db: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    schema: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    table: Option<Cow<'a, str>>,
}

/// The JSON converter's wrapper, around a record key.
#[derive(Deserialize)]
struct Wrapper<'a> {
    #[serde(borrow, default)]
    payload: Raw<'a>,
    #[serde(borrow, default)]
    schema: Raw<'a>,
}

/// A Canal flat message.
#[derive(Deserialize)]
struct Flat<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Raw<'a>,
    #[serde(borrow, default)]
    old: Raw<'a>,
    #[serde(borrow, default)]
    database: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    table: Option<Cow<'a, str>>,
    #[serde(default, rename = "isDdl")]
    is_ddl: Option<bool>,
    #[serde(borrow, default)]
    sql: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Column, Equality};

    const PG: InstanceType = InstanceType::AnalyticDBForPostgreSQL;

    fn table() -> Table {
        let columns = ["id", "name", "qty"]
            .iter()
            .map(|n| Column {
                name: n.to_string(),
                cast: None,
                equality: Equality::Other,
                defaults_to_null: false,
                sequence: false,
            })
            .collect();
        Table::new("public", "orders", columns)
    }

    fn reader<'t>(table: &'t Table, format: MessageFormat) -> Reader<'t> {
        Reader {
            table,
            format,
            key_source: PrimaryKeySource::Value,
            deletes: Deletes::Apply,
            unknown: UnknownFields::Fail,
            instance: PG,
            primary_key: &[0],
            source_table: "orders",
        }
    }

    type Values = Vec<(usize, Option<String>)>;

    /// Each change as (op, [(column, value)]).
    fn changes(decoded: Decoded<'_>) -> Vec<(Op, Values)> {
        let Decoded::Changes(changes) = decoded else {
            panic!("skipped: {decoded:?}")
        };
        changes
            .into_iter()
            .map(|c| {
                (
                    c.op,
                    c.row
                        .values()
                        .map(|(i, v)| (i, v.map(str::to_string)))
                        .collect(),
                )
            })
            .collect()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    fn read<'a>(
        r: &Reader<'_>,
        key: Option<&'a str>,
        value: Option<&'a str>,
    ) -> Result<Decoded<'a>, DecodeError> {
        r.read(key.map(str::as_bytes), value.map(str::as_bytes))
    }

    fn malformed_reason(result: Result<Decoded<'_>, DecodeError>) -> String {
        match result {
            Err(DecodeError::Malformed(reason)) => reason,
            other => panic!("not malformed: {other:?}"),
        }
    }

    #[test]
    fn json_tombstones_delete_by_key_or_are_skipped() {
        let t = table();
        let mut r = reader(&t, MessageFormat::Json);
        let deleted = changes(read(&r, Some(r#"{"id": 7}"#), None).unwrap());
        assert_eq!(deleted, vec![(Op::Delete, vec![(0, s("7"))])]);
        assert_eq!(
            changes(read(&r, Some("7"), None).unwrap()),
            deleted,
            "a bare key for a one-column key"
        );
        assert_eq!(
            changes(read(&r, Some(r#"{"schema": {}, "payload": {"id": 7}}"#), None).unwrap()),
            deleted,
            "the JSON converter's wrapper"
        );
        assert!(matches!(
            read(&r, Some(r#"{"other": 7}"#), None),
            Err(DecodeError::InvalidKey(_))
        ));
        assert_eq!(read(&r, None, None), Err(DecodeError::Empty));
        r.deletes = Deletes::Ignore;
        assert_eq!(
            read(&r, Some(r#"{"id": 7}"#), None),
            Ok(Decoded::Skipped(Skip::Tombstone))
        );
    }

    #[test]
    fn the_record_key_overrides_the_value_key() {
        let t = table();
        let mut r = reader(&t, MessageFormat::Json);
        r.key_source = PrimaryKeySource::Key;
        assert_eq!(
            changes(read(&r, Some(r#"{"id": 2}"#), Some(r#"{"id": 1, "name": "a"}"#)).unwrap()),
            vec![(Op::Write, vec![(0, s("2")), (1, s("a"))])]
        );
        assert_eq!(
            changes(read(&r, Some(r#"{"id": 2}"#), Some(r#"{"name": "a"}"#)).unwrap()),
            vec![(Op::Write, vec![(0, s("2")), (1, s("a"))])]
        );
        assert!(matches!(
            read(&r, None, Some(r#"{"name": "a"}"#)),
            Err(DecodeError::InvalidKey(_))
        ));
    }

    #[test]
    fn debezium_ops_with_and_without_the_wrapper() {
        let t = table();
        let r = reader(&t, MessageFormat::DebeziumJson);
        let create = r#"{"op": "c", "before": null, "after": {"id": 1, "name": "a"}, "source": {"db": "shop", "table": "orders"}}"#;
        let expected = vec![(Op::Write, vec![(0, s("1")), (1, s("a"))])];
        assert_eq!(changes(read(&r, None, Some(create)).unwrap()), expected);
        let wrapped = format!(r#"{{"schema": {{"type": "struct"}}, "payload": {create}}}"#);
        assert_eq!(changes(read(&r, None, Some(&wrapped)).unwrap()), expected);
        let snapshot = create.replace(r#""op": "c""#, r#""op": "r""#);
        assert_eq!(changes(read(&r, None, Some(&snapshot)).unwrap()), expected);
        let delete = r#"{"op": "d", "before": {"id": 1, "name": "a"}, "after": null}"#;
        assert_eq!(
            changes(read(&r, None, Some(delete)).unwrap()),
            vec![(Op::Delete, vec![(0, s("1"))])],
            "of the before image only the key is read"
        );
        // REPLICA IDENTITY NOTHING: no before image, the key is in the record key.
        let bare = r#"{"op": "d", "before": null, "after": null}"#;
        assert_eq!(
            changes(read(&r, Some(r#"{"id": 1}"#), Some(bare)).unwrap()),
            vec![(Op::Delete, vec![(0, s("1"))])]
        );
        assert_eq!(
            read(&r, Some(r#"{"id": 1}"#), None),
            Ok(Decoded::Skipped(Skip::Tombstone))
        );
        let wrapped_tombstone = r#"{"schema": null, "payload": null}"#;
        assert_eq!(
            read(&r, None, Some(wrapped_tombstone)),
            Ok(Decoded::Skipped(Skip::Tombstone))
        );
    }

    #[test]
    fn debezium_reads_the_key_from_the_record_key_when_told() {
        let t = table();
        let mut r = reader(&t, MessageFormat::DebeziumJson);
        r.key_source = PrimaryKeySource::Key;
        let delete = r#"{"op": "d", "before": {"id": 1, "name": "a"}}"#;
        assert_eq!(
            changes(read(&r, Some(r#"{"id": 9}"#), Some(delete)).unwrap()),
            vec![(Op::Delete, vec![(0, s("9"))])]
        );
        assert!(matches!(
            read(&r, None, Some(delete)),
            Err(DecodeError::InvalidKey(_))
        ));
        let create = r#"{"op": "c", "after": {"id": 1, "name": "a"}}"#;
        assert_eq!(
            changes(read(&r, Some(r#"{"id": 9}"#), Some(create)).unwrap()),
            vec![(Op::Write, vec![(0, s("9")), (1, s("a"))])]
        );
    }

    #[test]
    fn a_debezium_update_that_changes_the_key_deletes_the_old_row() {
        let t = table();
        let r = reader(&t, MessageFormat::DebeziumJson);
        let update =
            r#"{"op": "u", "before": {"id": 1, "name": "a"}, "after": {"id": 2, "name": "a"}}"#;
        assert_eq!(
            changes(read(&r, None, Some(update)).unwrap()),
            vec![
                (Op::Delete, vec![(0, s("1"))]),
                (Op::Write, vec![(0, s("2")), (1, s("a"))]),
            ]
        );
        let same =
            r#"{"op": "u", "before": {"id": 1, "name": "a"}, "after": {"id": 1, "name": "b"}}"#;
        assert_eq!(changes(read(&r, None, Some(same)).unwrap()).len(), 1);
        let no_before = r#"{"op": "u", "before": null, "after": {"id": 1, "name": "b"}}"#;
        assert_eq!(changes(read(&r, None, Some(no_before)).unwrap()).len(), 1);
    }

    #[test]
    fn debezium_skips_other_tables_ddl_and_truncates() {
        let t = table();
        let mut r = reader(&t, MessageFormat::DebeziumJson);
        let other =
            r#"{"op": "c", "after": {"id": 1}, "source": {"db": "shop", "table": "users"}}"#;
        assert_eq!(
            read(&r, None, Some(other)),
            Ok(Decoded::Skipped(Skip::OtherTable))
        );
        let ddl = r#"{"source": {"db": "shop"}, "databaseName": "shop", "ddl": "ALTER TABLE orders ADD x int", "tableChanges": []}"#;
        assert_eq!(
            read(&r, None, Some(ddl)),
            Ok(Decoded::Skipped(Skip::Ddl(Some("ALTER TABLE".into()))))
        );
        let truncate = r#"{"op": "t", "source": {"table": "orders"}}"#;
        assert_eq!(
            read(&r, None, Some(truncate)),
            Ok(Decoded::Skipped(Skip::Truncate))
        );
        r.source_table = "shop.users";
        assert!(matches!(
            read(&r, None, Some(other)),
            Ok(Decoded::Changes(_))
        ));
        r.source_table = "other.users";
        assert_eq!(
            read(&r, None, Some(other)),
            Ok(Decoded::Skipped(Skip::OtherTable))
        );
        r.source_table = "*";
        assert!(matches!(
            read(&r, None, Some(other)),
            Ok(Decoded::Changes(_))
        ));
        r.deletes = Deletes::Ignore;
        let delete = r#"{"op": "d", "before": {"id": 1}}"#;
        assert_eq!(
            read(&r, None, Some(delete)),
            Ok(Decoded::Skipped(Skip::Delete))
        );
    }

    #[test]
    fn malformed_debezium_events_say_why() {
        let t = table();
        let r = reader(&t, MessageFormat::DebeziumJson);
        assert!(
            malformed_reason(read(&r, None, Some(r#"{"after": {"id": 1}}"#))).contains("no \"op\"")
        );
        assert!(
            malformed_reason(read(&r, None, Some(r#"{"op": "x", "after": {"id": 1}}"#)))
                .contains("unknown op")
        );
        assert!(
            malformed_reason(read(&r, None, Some(r#"{"op": "c", "after": null}"#)))
                .contains("without an \"after\"")
        );
        assert!(
            malformed_reason(read(&r, None, Some(r#"{"op": "c", "after": [1]}"#)))
                .contains("not an object")
        );
        assert!(
            malformed_reason(read(
                &r,
                None,
                Some(r#"{"op": "c", "after": {"name": "a"}}"#)
            ))
            .contains("no primary key column")
        );
        assert!(
            malformed_reason(read(&r, None, Some(r#"{"op": "d", "before": null}"#)))
                .contains("delete without")
        );
        assert!(malformed_reason(read(&r, None, Some(r#"{"op": 1}"#))).contains("invalid type"));
        assert!(matches!(
            read(&r, None, Some(r#"{"op": "c""#)),
            Err(DecodeError::InvalidJson(_))
        ));
        assert_eq!(
            read(&r, None, Some("[1]")),
            Err(DecodeError::NotAnObject("array"))
        );
    }

    #[test]
    fn canal_messages_carry_many_rows() {
        let t = table();
        let r = reader(&t, MessageFormat::CanalJson);
        let insert = r#"{"type": "INSERT", "database": "shop", "table": "orders", "isDdl": false, "pkNames": ["id"],
            "data": [{"id": "1", "name": "a", "qty": null}, {"id": "2", "name": "b", "qty": "3"}], "old": null}"#;
        assert_eq!(
            changes(read(&r, None, Some(insert)).unwrap()),
            vec![
                (Op::Write, vec![(0, s("1")), (1, s("a")), (2, None)]),
                (Op::Write, vec![(0, s("2")), (1, s("b")), (2, s("3"))]),
            ]
        );
        let update = r#"{"type": "UPDATE", "table": "orders", "isDdl": false,
            "data": [{"id": "1", "name": "A"}, {"id": "5", "name": "b"}], "old": [{"name": "a"}, {"id": "2"}]}"#;
        assert_eq!(
            changes(read(&r, None, Some(update)).unwrap()),
            vec![
                (Op::Write, vec![(0, s("1")), (1, s("A"))]),
                (Op::Delete, vec![(0, s("2"))]),
                (Op::Write, vec![(0, s("5")), (1, s("b"))]),
            ]
        );
        let delete = r#"{"type": "DELETE", "table": "orders", "data": [{"id": "1", "name": "A"}]}"#;
        assert_eq!(
            changes(read(&r, None, Some(delete)).unwrap()),
            vec![(Op::Delete, vec![(0, s("1")), (1, s("A"))])]
        );
        let ddl = r#"{"type": "ALTER", "table": "orders", "isDdl": true, "sql": "alter table orders ADD x int", "data": null}"#;
        assert_eq!(
            read(&r, None, Some(ddl)),
            Ok(Decoded::Skipped(Skip::Ddl(Some("ALTER TABLE".into()))))
        );
        let other =
            r#"{"type": "INSERT", "database": "shop", "table": "users", "data": [{"id": "1"}]}"#;
        assert_eq!(
            read(&r, None, Some(other)),
            Ok(Decoded::Skipped(Skip::OtherTable))
        );
    }

    #[test]
    fn a_ddl_statement_is_kept_as_its_kind_only() {
        assert_eq!(
            statement_kind("  create USER bob IDENTIFIED BY 'hunter2'"),
            "CREATE USER"
        );
        assert_eq!(statement_kind("TRUNCATE"), "TRUNCATE");
        assert_eq!(statement_kind(&"x".repeat(100)).len(), 40);
    }

    #[test]
    fn malformed_canal_messages_say_why() {
        let t = table();
        let r = reader(&t, MessageFormat::CanalJson);
        assert!(
            malformed_reason(read(&r, None, Some(r#"{"table": "orders", "data": []}"#)))
                .contains("no \"type\"")
        );
        assert!(
            malformed_reason(read(
                &r,
                None,
                Some(r#"{"type": "UPSERT", "data": [{"id": "1"}]}"#)
            ))
            .contains("unknown type")
        );
        assert!(
            malformed_reason(read(
                &r,
                None,
                Some(r#"{"type": "INSERT", "data": {"id": "1"}}"#)
            ))
            .contains("not an array")
        );
        assert!(
            malformed_reason(read(&r, None, Some(r#"{"type": "INSERT"}"#)))
                .contains("without \"data\"")
        );
        assert!(
            malformed_reason(read(&r, None, Some(r#"{"type": "INSERT", "data": []}"#)))
                .contains("empty")
        );
        assert!(
            malformed_reason(read(
                &r,
                None,
                Some(r#"{"type": "DELETE", "data": [{"name": "a"}]}"#)
            ))
            .contains("no primary key column")
        );
        assert!(
            malformed_reason(read(
                &r,
                None,
                Some(r#"{"type": "INSERT", "data": [{"id": null}]}"#)
            ))
            .contains("is null")
        );
        assert!(
            malformed_reason(read(&r, None, Some(r#"{"type": "INSERT", "data": ["x"]}"#)))
                .contains("not an object")
        );
    }
}
