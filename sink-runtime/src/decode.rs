//! Message value → row. A value must be UTF-8 JSON holding an object; each key names a column.
//! Values are kept as the text the database will parse: numbers keep their exact digits,
//! nested objects and arrays stay JSON text, null stays NULL.
//!
//! This runs once per message, so it parses the JSON in one pass and borrows keys and most
//! values from the payload.

use std::borrow::Cow;
use std::fmt;

use adbsink_crd::{InstanceType, UnknownFields};
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::table::Table;

/// One decoded message: the columns it sets, in table order, with their text values. Values
/// are slices of the message where they can be (numbers, strings without escapes, nested JSON),
/// so most rows copy nothing.
#[derive(Debug, Clone, Default)]
pub struct Row<'a> {
    /// The message value the row was decoded from.
    source: &'a str,
    /// Values that are no slice of the message (unescaped strings, MySQL's 1/0 booleans), back to
    /// back.
    owned: String,
    /// Each set column with its value (None: NULL), in column order.
    cells: Vec<(usize, Option<Span>)>,
}

/// Where a value's text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    Source(u32, u32),
    Owned(u32, u32),
}

impl<'a> Row<'a> {
    fn new(source: &'a str, columns: usize) -> Self {
        Self {
            source,
            owned: String::new(),
            cells: Vec::with_capacity(columns),
        }
    }

    /// Adds a value; [`Row::finish`] orders the row and settles columns set twice.
    pub(crate) fn push(&mut self, column: usize, value: Option<&str>) {
        let span = value.map(|v| self.slice_of_source(v).unwrap_or_else(|| self.append(v)));
        self.cells.push((column, span));
    }

    /// The span of `value` in the message, if it is a slice of it.
    fn slice_of_source(&self, value: &str) -> Option<Span> {
        let start = (value.as_ptr() as usize).checked_sub(self.source.as_ptr() as usize)?;
        let end = start + value.len();
        (end <= self.source.len()).then(|| Span::Source(offset(start), offset(end)))
    }

    /// Appends `value` to the owned text; returns its span.
    fn append(&mut self, value: &str) -> Span {
        let start = self.owned.len();
        self.owned.push_str(value);
        Span::Owned(offset(start), offset(self.owned.len()))
    }

    /// Puts the cells in column order; a column set twice keeps its later value, as a JSON
    /// object does. The sort is stable, so of equal columns the later one comes last.
    pub(crate) fn finish(&mut self) {
        self.cells.sort_by_key(|(c, _)| *c);
        self.cells.dedup_by(|later, kept| {
            later.0 == kept.0 && {
                *kept = *later;
                true
            }
        });
    }

    fn value(&self, span: Option<Span>) -> Option<&str> {
        span.map(|span| match span {
            Span::Source(start, end) => &self.source[start as usize..end as usize],
            Span::Owned(start, end) => &self.owned[start as usize..end as usize],
        })
    }

    /// The value of `column`: None when the message does not set it, Some(None) for NULL.
    pub fn get(&self, column: usize) -> Option<Option<&str>> {
        self.cells
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, span)| self.value(*span))
    }

    /// The set columns and their values, in column order.
    pub fn values(&self) -> impl Iterator<Item = (usize, Option<&str>)> {
        self.cells.iter().map(|(c, span)| (*c, self.value(*span)))
    }

    pub fn columns(&self) -> impl Iterator<Item = usize> {
        self.cells.iter().map(|(c, _)| *c)
    }

    /// Text every value is a slice of: the message, and what had to be rewritten. A byte
    /// absent from both is in no value.
    pub fn texts(&self) -> [&str; 2] {
        [self.source, &self.owned]
    }

    /// How many columns the message sets.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Bytes of the values (NULL counts 4), for statement size limits.
    pub fn bytes(&self) -> usize {
        self.values().map(|(_, v)| v.map_or(4, str::len)).sum()
    }
}

/// Rows are equal when they set the same columns to the same values, wherever the text lives.
impl PartialEq for Row<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.values().eq(other.values())
    }
}

impl Eq for Row<'_> {}

impl<'v> FromIterator<(usize, Option<&'v str>)> for Row<'static> {
    fn from_iter<I: IntoIterator<Item = (usize, Option<&'v str>)>>(values: I) -> Self {
        let mut row = Row::default();
        for (column, value) in values {
            row.push(column, value);
        }
        row.finish();
        row
    }
}

/// A span end in a row's text. The text is never longer than the message it came from, which
/// Kafka caps far below 4 GiB.
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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
    /// An object none of whose keys is a column: there is nothing to write.
    NoColumns,
    /// Upsert: the message does not carry this primary key column.
    MissingKey(String),
    /// Upsert: this primary key column is null.
    NullKey(String),
    /// A change event (DebeziumJson, CanalJson) whose envelope is not what its format says:
    /// no op, an unknown op, no row image, `data` not an array, no key.
    Malformed(String),
    /// The record key cannot give the primary key (`primaryKeySource: Key`, tombstones).
    InvalidKey(String),
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
            Self::NoColumns => "NoColumns",
            Self::MissingKey(_) => "MissingKey",
            Self::NullKey(_) => "NullKey",
            Self::Malformed(_) => "MalformedChangeEvent",
            Self::InvalidKey(_) => "InvalidKey",
        }
    }

    /// Malformed messages go to the dead-letter topic; a well-formed message the table cannot
    /// hold (unknown column) is a sink error, like a row the database rejects.
    pub fn is_sink_error(&self) -> bool {
        matches!(
            self,
            Self::UnknownColumn(_) | Self::NoColumns | Self::MissingKey(_) | Self::NullKey(_)
        )
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "message has no value"),
            Self::NotUtf8(e) => write!(f, "value is not UTF-8: {e}"),
            Self::InvalidJson(e) => write!(f, "value is not valid JSON: {e}"),
            Self::NotAnObject(kind) => write!(f, "value is a JSON {kind}, not an object"),
            Self::UnknownColumn(key) => write!(f, "key {key:?} is not a column of the table"),
            Self::NoColumns => write!(f, "no key of the message is a column of the table"),
            Self::MissingKey(column) => {
                write!(
                    f,
                    "the message has no primary key column {column:?} (Upsert)"
                )
            }
            Self::NullKey(column) => write!(f, "primary key column {column:?} is null (Upsert)"),
            Self::Malformed(reason) => write!(f, "malformed change event: {reason}"),
            Self::InvalidKey(reason) => write!(f, "record key: {reason}"),
        }
    }
}

/// Decodes one message value against the table.
pub fn decode<'a>(
    payload: Option<&'a [u8]>,
    table: &Table,
    unknown: UnknownFields,
    instance: InstanceType,
) -> Result<Row<'a>, DecodeError> {
    let payload = payload
        .filter(|p| !p.is_empty())
        .ok_or(DecodeError::Empty)?;
    let text = std::str::from_utf8(payload).map_err(|e| DecodeError::NotUtf8(e.to_string()))?;
    decode_object(text, table, unknown, instance)
}

/// Decodes one JSON object (a message value, or an object inside one) against the table.
pub fn decode_object<'a>(
    text: &'a str,
    table: &Table,
    unknown: UnknownFields,
    instance: InstanceType,
) -> Result<Row<'a>, DecodeError> {
    decode_columns(text, table, unknown, instance, None)
}

/// [`decode_object`] keeping only `only`'s columns (others are skipped unread, whatever
/// `unknown` says): a change event's before image is read for its key alone.
pub fn decode_columns<'a>(
    text: &'a str,
    table: &Table,
    unknown: UnknownFields,
    instance: InstanceType,
    only: Option<&[usize]>,
) -> Result<Row<'a>, DecodeError> {
    if text.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(not_an_object(text));
    }
    let mut decoder = RowDecoder {
        table,
        unknown,
        instance,
        unknown_key: None,
        source: text,
        only,
    };
    let invalid = |e: serde_json::Error| DecodeError::InvalidJson(e.to_string());
    let mut json = serde_json::Deserializer::from_str(text);
    let mut row = json.deserialize_map(&mut decoder).map_err(invalid)?;
    json.end().map_err(invalid)?;
    // Reported only for a message that is valid JSON throughout: a malformed one is malformed
    // first, whatever its keys.
    if let Some(key) = decoder.unknown_key {
        return Err(DecodeError::UnknownColumn(key));
    }
    row.finish();
    if row.is_empty() {
        return Err(DecodeError::NoColumns);
    }
    Ok(row)
}

/// Upsert: a row must carry every primary key column, none of them null, or it cannot be
/// matched to a row of the table.
pub fn check_key(row: &Row<'_>, table: &Table, primary_key: &[usize]) -> Result<(), DecodeError> {
    for column in primary_key {
        let name = || table.columns[*column].name.clone();
        match row.get(*column) {
            None => return Err(DecodeError::MissingKey(name())),
            Some(None) => return Err(DecodeError::NullKey(name())),
            Some(Some(_)) => {}
        }
    }
    Ok(())
}

/// Why a value that does not start with `{` is no row.
pub(crate) fn not_an_object(text: &str) -> DecodeError {
    let raw: &RawValue = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return DecodeError::InvalidJson(e.to_string()),
    };
    DecodeError::NotAnObject(match raw.get().as_bytes().first() {
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "boolean",
        _ => "number",
    })
}

/// Decodes a JSON object straight into a [`Row`].
struct RowDecoder<'t, 'de> {
    table: &'t Table,
    unknown: UnknownFields,
    instance: InstanceType,
    /// The first key that is no column, under `UnknownFields::Fail`.
    unknown_key: Option<String>,
    /// The message being decoded, which the row's values borrow from.
    source: &'de str,
    /// Only these columns, when set.
    only: Option<&'t [usize]>,
}

impl<'de> Visitor<'de> for &mut RowDecoder<'_, 'de> {
    type Value = Row<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row<'de>, A::Error> {
        // A message sets at most one column per `"k":v` pair: a short message against a wide
        // table reserves what it can use, not a slot per column.
        let pairs = memchr::memchr_iter(b':', self.source.as_bytes()).count();
        let mut row = Row::new(self.source, self.table.len().min(pairs));
        let mut next = 0;
        while let Some(Key(key)) = map.next_key()? {
            let Some(column) = self.table.column_index_from(&key, next) else {
                map.next_value::<IgnoredAny>()?;
                if self.unknown == UnknownFields::Fail && self.unknown_key.is_none() {
                    self.unknown_key = Some(key.into_owned());
                }
                continue;
            };
            next = column + 1;
            if self.only.is_some_and(|only| !only.contains(&column)) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: &'de RawValue = map.next_value()?;
            let text = value_text(value.get(), self.instance).map_err(de::Error::custom)?;
            row.push(column, text.as_deref());
        }
        Ok(row)
    }
}

/// An object key, borrowed from the payload unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The text the database parses for one JSON value (already validated by the parser).
pub(crate) fn value_text(
    raw: &str,
    instance: InstanceType,
) -> Result<Option<Cow<'_, str>>, serde_json::Error> {
    // MySQL has no boolean literal type for parameters: TINYINT(1) takes 1/0. PostgreSQL reads
    // JSON's true and false as they are.
    let mysql = instance == InstanceType::AnalyticDBForMySQL;
    Ok(match raw.as_bytes().first() {
        Some(b'n') => None,
        Some(b't') if mysql => Some(Cow::Borrowed("1")),
        Some(b'f') if mysql => Some(Cow::Borrowed("0")),
        // A string without escapes is its own text between the quotes.
        Some(b'"') if !raw.contains('\\') => Some(Cow::Borrowed(&raw[1..raw.len() - 1])),
        Some(b'"') => Some(Cow::Owned(serde_json::from_str::<String>(raw)?)),
        _ => Some(Cow::Borrowed(raw)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Column, Equality};

    const PG: InstanceType = InstanceType::AnalyticDBForPostgreSQL;

    fn table() -> Table {
        let columns = ["id", "name", "price", "tags", "ok", "note"]
            .iter()
            .map(|n| Column {
                name: n.to_string(),
                cast: None,
                equality: Equality::Other,
                defaults_to_null: false,
                sequence: false,
            })
            .collect();
        Table::new("public", "t", columns)
    }

    fn values(row: &Row) -> Vec<(usize, Option<String>)> {
        row.values()
            .map(|(c, v)| (c, v.map(str::to_string)))
            .collect()
    }

    fn ok(json: &str) -> Vec<(usize, Option<String>)> {
        values(&decode(Some(json.as_bytes()), &table(), UnknownFields::Fail, PG).expect("decodes"))
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
        assert_eq!(values(&row), vec![(4, Some("0".into()))]);
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
        assert_eq!(values(&row), vec![(0, Some("1".into()))]);
    }

    #[test]
    fn a_key_set_twice_keeps_its_later_value() {
        assert_eq!(ok(r#"{"id": 1, "ID": 2}"#), vec![(0, Some("2".into()))]);
        assert_eq!(ok(r#"{"ID": 1, "id": 2}"#), vec![(0, Some("2".into()))]);
        assert_eq!(
            ok(r#"{"note": "n", "id": 1, "name": "a", "ID": null, "id": 3}"#),
            vec![
                (0, Some("3".into())),
                (1, Some("a".into())),
                (5, Some("n".into()))
            ]
        );
    }

    #[test]
    fn escaped_keys_and_values_are_unescaped() {
        assert_eq!(
            ok(r#" {"n\u0061me": "tab\there", "id": "\u00e9"}"#),
            vec![(0, Some("\u{e9}".into())), (1, Some("tab\there".into()))]
        );
    }

    #[test]
    fn malformed_json_is_malformed_whatever_its_keys() {
        assert!(matches!(
            err(br#"{"nope": 1, "id": }"#, UnknownFields::Fail),
            DecodeError::InvalidJson(_)
        ));
        assert!(matches!(
            err(br#"{"id": 1} trailing"#, UnknownFields::Ignore),
            DecodeError::InvalidJson(_)
        ));
    }

    #[test]
    fn only_rewritten_values_are_copied() {
        let plain = br#"{"id":1,"name":"a b","tags":[1,2],"note":null}"#;
        let row = decode(Some(plain), &table(), UnknownFields::Fail, PG).expect("decodes");
        assert_eq!(row.texts()[1], "", "every value is a slice of the message");
        let rewritten = br#"{"id":1,"name":"a\tb","ok":true}"#;
        let row = decode(Some(rewritten), &table(), UnknownFields::Fail, PG).expect("decodes");
        assert_eq!(row.texts()[1], "a\tb", "the unescaped string only");
        assert_eq!(row.get(1), Some(Some("a\tb")));
        assert_eq!(row.get(4), Some(Some("true")));
        let mysql = InstanceType::AnalyticDBForMySQL;
        let row = decode(Some(rewritten), &table(), UnknownFields::Fail, mysql).expect("decodes");
        assert_eq!(row.texts()[1], "a\tb1", "and MySQL's boolean");
        assert_eq!(row.get(4), Some(Some("1")));
    }

    #[test]
    fn rows_built_by_hand_match_decoded_ones() {
        let row: Row = [(5, Some("x")), (0, Some("1")), (5, None)]
            .into_iter()
            .collect();
        assert_eq!(values(&row), ok(r#"{"note": null, "id": 1}"#));
        assert_eq!(row.get(5), Some(None));
        assert_eq!(row.get(1), None);
        assert_eq!(row.len(), 2);
        assert_eq!(row.bytes(), 5, "an overwritten value does not count");
    }

    #[test]
    fn a_short_message_against_a_wide_table_reserves_what_it_uses() {
        let columns = (0..1000)
            .map(|i| Column {
                name: format!("c{i}"),
                cast: None,
                equality: Equality::Other,
                defaults_to_null: false,
                sequence: false,
            })
            .collect();
        let wide = Table::new("s", "t", columns);
        let row = decode(
            Some(br#"{"c1": 1, "c2": "a:b"}"#),
            &wide,
            UnknownFields::Fail,
            PG,
        )
        .unwrap();
        assert_eq!(row.len(), 2);
        assert!(row.cells.capacity() <= 3, "{}", row.cells.capacity());
    }

    #[test]
    fn a_message_without_a_known_column_has_nothing_to_write() {
        assert_eq!(err(b"{}", UnknownFields::Fail), DecodeError::NoColumns);
        assert_eq!(
            err(br#"{"nope": 1}"#, UnknownFields::Ignore),
            DecodeError::NoColumns
        );
    }
}
