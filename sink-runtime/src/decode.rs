//! Message value → row. A value must be UTF-8 JSON holding an object; each key names a column.
//! Values are kept as the text the database will parse: numbers keep their exact digits,
//! nested objects and arrays stay JSON text, null stays NULL.

use std::collections::HashMap;

use adbsink_crd::{InstanceType, UnknownFields};
use serde_json::value::RawValue;

use crate::table::Table;

/// One decoded message: the columns it sets, in table order, with their text values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row {
    pub values: Vec<(usize, Option<String>)>,
    /// Bytes of the values, for batch limits.
    pub bytes: usize,
}

impl Row {
    pub fn get(&self, column: usize) -> Option<&Option<String>> {
        self.values
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, v)| v)
    }
}

/// Why a message cannot become a row, and where it must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Null value (a tombstone) or empty payload.
    Empty,
    NotUtf8(String),
    InvalidJson(String),
    NotAnObject(&'static str),
    /// A key that is not a column while unknownFields is Fail.
    UnknownColumn(String),
}

impl DecodeError {
    /// Kafka Connect's `exception.class.name` for this failure.
    pub fn class_name(&self) -> &'static str {
        match self {
            Self::Empty => "EmptyValue",
            Self::NotUtf8(_) => "InvalidUtf8",
            Self::InvalidJson(_) => "InvalidJson",
            Self::NotAnObject(_) => "NotAJsonObject",
            Self::UnknownColumn(_) => "UnknownColumn",
        }
    }

    /// Malformed messages go to the dead-letter topic; a well-formed message the table cannot
    /// hold (unknown column) is a sink error, like a row the database rejects.
    pub fn is_sink_error(&self) -> bool {
        matches!(self, Self::UnknownColumn(_))
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "message has no value"),
            Self::NotUtf8(e) => write!(f, "value is not UTF-8: {e}"),
            Self::InvalidJson(e) => write!(f, "value is not valid JSON: {e}"),
            Self::NotAnObject(kind) => write!(f, "value is a JSON {kind}, not an object"),
            Self::UnknownColumn(key) => write!(f, "key {key:?} is not a column of the table"),
        }
    }
}

/// Decodes one message value against the table.
pub fn decode(
    payload: Option<&[u8]>,
    table: &Table,
    unknown: UnknownFields,
    instance: InstanceType,
) -> Result<Row, DecodeError> {
    let payload = payload
        .filter(|p| !p.is_empty())
        .ok_or(DecodeError::Empty)?;
    let text = std::str::from_utf8(payload).map_err(|e| DecodeError::NotUtf8(e.to_string()))?;
    let raw: &RawValue =
        serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    match raw.get().as_bytes().first() {
        Some(b'{') => {}
        Some(b'[') => return Err(DecodeError::NotAnObject("array")),
        Some(b'"') => return Err(DecodeError::NotAnObject("string")),
        Some(b'n') => return Err(DecodeError::NotAnObject("null")),
        Some(b't' | b'f') => return Err(DecodeError::NotAnObject("boolean")),
        _ => return Err(DecodeError::NotAnObject("number")),
    }
    let fields: HashMap<String, &RawValue> =
        serde_json::from_str(raw.get()).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let mut row = Row::default();
    for (key, value) in fields {
        let Some(column) = table.column_index(&key) else {
            match unknown {
                UnknownFields::Ignore => continue,
                UnknownFields::Fail => return Err(DecodeError::UnknownColumn(key)),
            }
        };
        let text = value_text(value, instance)?;
        row.bytes += text.as_ref().map_or(4, String::len);
        // Two keys folding to one column: the later one in the message wins, as in JSON.
        row.values.retain(|(c, _)| *c != column);
        row.values.push((column, text));
    }
    row.values.sort_by_key(|(c, _)| *c);
    Ok(row)
}

fn value_text(value: &RawValue, instance: InstanceType) -> Result<Option<String>, DecodeError> {
    let raw = value.get();
    Ok(match raw.as_bytes().first() {
        Some(b'n') => None,
        Some(b't') => Some(bool_text(true, instance)),
        Some(b'f') => Some(bool_text(false, instance)),
        Some(b'"') => Some(
            serde_json::from_str::<String>(raw)
                .map_err(|e| DecodeError::InvalidJson(e.to_string()))?,
        ),
        _ => Some(raw.to_string()),
    })
}

/// MySQL has no boolean literal type for parameters: TINYINT(1) takes 1/0.
fn bool_text(value: bool, instance: InstanceType) -> String {
    match (instance, value) {
        (InstanceType::AnalyticDBForMySQL, true) => "1".into(),
        (InstanceType::AnalyticDBForMySQL, false) => "0".into(),
        (InstanceType::AnalyticDBForPostgreSQL, v) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    const PG: InstanceType = InstanceType::AnalyticDBForPostgreSQL;

    fn table() -> Table {
        let columns = ["id", "name", "price", "tags", "ok", "note"]
            .iter()
            .map(|n| Column {
                name: n.to_string(),
                cast: None,
            })
            .collect();
        Table::new("public", "t", columns)
    }

    fn ok(json: &str) -> Vec<(usize, Option<String>)> {
        decode(Some(json.as_bytes()), &table(), UnknownFields::Fail, PG)
            .expect("decodes")
            .values
    }

    fn err(payload: &[u8], unknown: UnknownFields) -> DecodeError {
        decode(Some(payload), &table(), unknown, PG).expect_err("fails")
    }

    #[test]
    fn values_keep_their_exact_text() {
        assert_eq!(
            ok(
                r#"{"name":"a\"b","id":12345678901234567890,"price":1.10,"tags":{"a":[1, 2]},"ok":true,"note":null}"#
            ),
            vec![
                (0, Some("12345678901234567890".into())),
                (1, Some("a\"b".into())),
                (2, Some("1.10".into())),
                (3, Some(r#"{"a":[1, 2]}"#.into())),
                (4, Some("true".into())),
                (5, None),
            ]
        );
    }

    #[test]
    fn mysql_booleans_are_numbers() {
        let row = decode(
            Some(br#"{"ok": false}"#),
            &table(),
            UnknownFields::Fail,
            InstanceType::AnalyticDBForMySQL,
        )
        .expect("decodes");
        assert_eq!(row.values, vec![(4, Some("0".into()))]);
    }

    #[test]
    fn missing_keys_are_not_set() {
        assert_eq!(ok(r#"{"id": 1}"#), vec![(0, Some("1".into()))]);
    }

    #[test]
    fn malformed_values_are_named() {
        let fail = UnknownFields::Fail;
        assert!(matches!(err(b"\xff\xfe{}", fail), DecodeError::NotUtf8(_)));
        assert!(matches!(
            err(b"{\"id\": ", fail),
            DecodeError::InvalidJson(_)
        ));
        assert_eq!(err(b"[1,2]", fail), DecodeError::NotAnObject("array"));
        assert_eq!(err(b"42", fail), DecodeError::NotAnObject("number"));
        assert_eq!(err(b"\"s\"", fail), DecodeError::NotAnObject("string"));
        assert_eq!(err(b"null", fail), DecodeError::NotAnObject("null"));
        assert_eq!(
            decode(None, &table(), fail, PG).expect_err("empty"),
            DecodeError::Empty
        );
    }

    #[test]
    fn unknown_keys_fail_or_are_dropped() {
        let hostile = br#"{"id": 1, "id\"; DROP TABLE t;--": 2}"#;
        assert_eq!(
            err(hostile, UnknownFields::Fail),
            DecodeError::UnknownColumn("id\"; DROP TABLE t;--".into())
        );
        assert!(err(hostile, UnknownFields::Fail).is_sink_error());
        let row = decode(Some(hostile), &table(), UnknownFields::Ignore, PG).expect("decodes");
        assert_eq!(row.values, vec![(0, Some("1".into()))]);
    }
}
