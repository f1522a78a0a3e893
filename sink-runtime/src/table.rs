//! The destination table as the database describes it. Column names used in SQL come only from
//! here, never from a message.

use std::borrow::Cow;
use std::collections::HashMap;

/// Looked up for every key of every message, and only ever filled from the table's own column
/// names: a fast hash, with no flooding risk since message keys are never inserted.
type Names<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// One column of the destination table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// PostgreSQL: the quoted base type (`"pg_catalog"."int4"`) parameters are cast to, so
    /// text parameters convert with the column's own input rules. Unused on MySQL.
    pub cast: Option<String>,
    /// How the database compares its values, as far as their texts tell.
    pub equality: Equality,
    /// A row that leaves the column out stores NULL (nullable, with no default, identity,
    /// generation, auto-increment or domain), so a statement or `COPY` may list the column
    /// and write NULL for such rows ([`crate::dialect::fill_groups`]).
    pub defaults_to_null: bool,
    /// Left out, the database fills it from a sequence (identity, `serial`, auto-increment):
    /// a value no other row holds.
    pub sequence: bool,
}

/// How the database compares two values of a column, as far as the sink can tell from their
/// texts (`overlap.rs`, `coalesce.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Equality {
    /// A whole-number type: equal values have one canonical form (`01`, `+1` and `1`).
    Integer,
    /// Equal only when their texts are: PostgreSQL `text` and `varchar` under a deterministic
    /// collation.
    Text,
    /// A PostgreSQL `uuid`: one value per 32 hex digits, whatever their case, hyphens or braces.
    Uuid,
    /// Text that may lose or ignore trailing spaces (PostgreSQL `char(n)`, and `varchar(n)`,
    /// which cuts spaces past its length): values equal only if they are without them.
    Trimmed,
    /// Text under a collation that may ignore case and trailing spaces (MySQL's character
    /// types, under the collations [`mysql_text_equality`] knows): values equal only if their
    /// folded forms are, when those are plain ASCII.
    Folded,
    /// Values with different texts may be equal: numerics, timestamps, anything else.
    Other,
}

/// A form that values the database holds equal share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Canonical<'a> {
    /// A whole number within 64 bits; a wider one (MySQL's unsigned `BIGINT`) is its
    /// canonical decimal text.
    Number(i64),
    Text(Cow<'a, str>),
}

impl Column {
    /// `text` in a form all values the database holds equal to it share. Distinct forms are
    /// distinct values only where [`Column::exact`]; under [`Equality::Folded`] distinct
    /// values may share one. None where no such form is known here: any other type, text in a
    /// whole-number column that is not plainly a whole number (`1.0`, `1e3`), and folded text
    /// beyond printable ASCII (collations equate accents, ligatures, ignorable characters).
    pub fn canonical<'a>(&self, text: &'a str) -> Option<Canonical<'a>> {
        match self.equality {
            Equality::Integer => canonical_integer(text).map(|n| match i64::try_from(n) {
                Ok(n) => Canonical::Number(n),
                Err(_) => Canonical::Text(Cow::Owned(n.to_string())),
            }),
            Equality::Text => Some(Canonical::Text(Cow::Borrowed(text))),
            Equality::Uuid => canonical_uuid(text).map(|u| Canonical::Text(Cow::Owned(u))),
            Equality::Trimmed => Some(Canonical::Text(Cow::Borrowed(text.trim_end_matches(' ')))),
            Equality::Folded => {
                let text = text.trim_end_matches(' ');
                if !text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
                    return None;
                }
                Some(Canonical::Text(
                    if text.bytes().any(|b| b.is_ascii_uppercase()) {
                        Cow::Owned(text.to_ascii_lowercase())
                    } else {
                        Cow::Borrowed(text)
                    },
                ))
            }
            Equality::Other => None,
        }
    }

    /// Whether values with distinct canonical forms are distinct values.
    pub fn exact(&self) -> bool {
        matches!(
            self.equality,
            Equality::Integer | Equality::Text | Equality::Uuid
        )
    }
}

/// How a MySQL character column of `collation` compares. Folding ASCII case and trailing
/// spaces covers the general, Unicode (UCA 4.0, 5.2, 9.0, 14.0) and binary collations of the
/// Unicode and ASCII character sets; language tailorings may equate other ASCII texts
/// (Hungarian `ccs` and `cscs`, `swe7`'s `[` and `{`), so their columns compare as unknown.
pub fn mysql_text_equality(collation: Option<&str>) -> Equality {
    const CHARSETS: [&str; 5] = ["utf8mb4_", "utf8mb3_", "utf8_", "ascii_", "latin1_"];
    const RULES: [&str; 22] = [
        "general_ci",
        "general_cs",
        "general_nopad_ci",
        "general_mysql500_ci",
        "bin",
        "nopad_bin",
        "unicode_ci",
        "unicode_nopad_ci",
        "unicode_520_ci",
        "unicode_520_nopad_ci",
        "0900_ai_ci",
        "0900_as_ci",
        "0900_as_cs",
        "0900_bin",
        "uca1400_ai_ci",
        "uca1400_ai_cs",
        "uca1400_as_ci",
        "uca1400_as_cs",
        "uca1400_nopad_ai_ci",
        "uca1400_nopad_ai_cs",
        "uca1400_nopad_as_ci",
        "uca1400_nopad_as_cs",
    ];
    let known = collation.is_some_and(|collation| {
        CHARSETS.iter().any(|charset| {
            collation
                .strip_prefix(charset)
                .is_some_and(|rule| RULES.contains(&rule))
        })
    });
    if known {
        Equality::Folded
    } else {
        Equality::Other
    }
}

/// A uuid as 32 lowercase hex digits: PostgreSQL reads its hex digits in either case, with
/// or without braces around them and a hyphen after any group of four (never at the end).
fn canonical_uuid(text: &str) -> Option<String> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let mut digits = String::with_capacity(32);
    let mut hyphen_allowed = false;
    for c in inner.chars() {
        if c == '-' && hyphen_allowed {
            hyphen_allowed = false;
        } else if c.is_ascii_hexdigit() && digits.len() < 32 {
            digits.push(c.to_ascii_lowercase());
            hyphen_allowed = digits.len().is_multiple_of(4) && digits.len() < 32;
        } else {
            return None;
        }
    }
    (digits.len() == 32 && !inner.ends_with('-')).then_some(digits)
}

/// The value of a whole number as both databases read one from text: surrounding spaces and
/// a sign allowed, leading zeros ignored. Anything else (`1.0`, `1e3`, `0x1F`) has no
/// canonical form here.
fn canonical_integer(text: &str) -> Option<i128> {
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.strip_prefix('+').unwrap_or(text).parse().ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Schema (PostgreSQL) or database (MySQL) holding the table.
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    /// Column sets no two rows may share: every unique index or constraint, the primary key
    /// among them.
    pub unique: Vec<Vec<usize>>,
    /// Rows may constrain one another beyond equal values of those columns (a foreign key to
    /// the table itself, an exclusion constraint, a unique index on an expression), so the
    /// rows of two batches are never known to be independent (`overlap.rs`).
    pub entangled: bool,
    exact: Names<usize>,
    folded: Names<Option<usize>>,
}

impl Table {
    pub fn new(schema: &str, name: &str, columns: Vec<Column>) -> Self {
        let exact = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let mut folded = Names::<Option<usize>>::default();
        for (i, c) in columns.iter().enumerate() {
            folded
                .entry(c.name.to_lowercase())
                .and_modify(|slot| *slot = None)
                .or_insert(Some(i));
        }
        Self {
            schema: schema.to_string(),
            name: name.to_string(),
            columns,
            unique: Vec::new(),
            entangled: false,
            exact,
            folded,
        }
    }

    /// The table with the constraints the database enforces between its rows.
    pub fn with_constraints(mut self, unique: Vec<Vec<usize>>, entangled: bool) -> Self {
        self.unique = unique;
        self.entangled = entangled;
        self
    }

    /// The column a JSON key names: an exact match, else the one column equal to it ignoring
    /// case (both databases fold unquoted names, so users write keys in either case).
    pub fn column_index(&self, key: &str) -> Option<usize> {
        self.exact
            .get(key)
            .copied()
            .or_else(|| self.folded.get(&key.to_lowercase()).copied().flatten())
    }

    /// [`Table::column_index`], trying column `hint` first. Messages usually list their keys
    /// in the table's order, so passing the column after the previous key's makes most lookups
    /// one comparison instead of a hash and a probe.
    pub fn column_index_from(&self, key: &str, hint: usize) -> Option<usize> {
        match self.columns.get(hint) {
            // Names are unique, so an exact match here is the exact match.
            Some(column) if column.name == key => Some(hint),
            _ => self.column_index(key),
        }
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(names: &[&str]) -> Table {
        let columns = names
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

    #[test]
    fn equal_whole_numbers_have_one_form_and_other_texts_none() {
        let column = |equality| Column {
            name: "k".into(),
            cast: None,
            equality,
            defaults_to_null: false,
            sequence: false,
        };
        let integer = column(Equality::Integer);
        assert_eq!(integer.canonical("1"), integer.canonical(" +01 "));
        assert_eq!(integer.canonical("-7"), Some(Canonical::Number(-7)));
        for text in ["1.0", "1e3", "0x1F", "", "-", "1_000", "٣"] {
            assert_eq!(integer.canonical(text), None, "{text:?}");
        }
        let text = column(Equality::Text);
        assert_ne!(text.canonical("01"), text.canonical("1"));
        assert_ne!(text.canonical("a"), text.canonical("A"));
        let folded = column(Equality::Folded);
        assert_eq!(folded.canonical("Key 1  "), folded.canonical("kEY 1"));
        assert_ne!(folded.canonical(" a"), folded.canonical("a"));
        for text in ["café", "a\tb", "ß"] {
            assert_eq!(folded.canonical(text), None, "{text:?}");
        }
        assert_eq!(column(Equality::Other).canonical("1"), None);
        assert!(integer.exact() && text.exact() && !folded.exact());
        let uuid = column(Equality::Uuid);
        assert_eq!(
            uuid.canonical("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
            uuid.canonical("{a0eebc999c0b4ef8bb6d6bb9bd380a11}")
        );
        assert_eq!(uuid.canonical("a0eebc99"), None);
        for bad in [
            "a0eebc999c0b4ef8bb6d6bb9bd380a11-",
            "a0eebc99--9c0b4ef8bb6d6bb9bd380a11",
            "a0eeb-c999c0b4ef8bb6d6bb9bd380a11",
            "{a0eebc999c0b4ef8bb6d6bb9bd380a11",
        ] {
            assert_eq!(uuid.canonical(bad), None, "{bad}");
        }
        assert!(
            uuid.canonical("a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11")
                .is_some()
        );
        assert!(uuid.exact());
        let trimmed = column(Equality::Trimmed);
        assert_eq!(trimmed.canonical("ab  "), trimmed.canonical("ab"));
        assert_ne!(trimmed.canonical("ab"), trimmed.canonical("AB"));
        assert!(!trimmed.exact());
    }

    #[test]
    fn only_collations_whose_ascii_equality_is_case_and_trailing_spaces_fold() {
        for collation in [
            "utf8mb4_general_ci",
            "utf8mb4_0900_ai_ci",
            "utf8mb4_bin",
            "utf8mb3_unicode_ci",
            "latin1_general_cs",
            "utf8mb4_uca1400_ai_ci",
        ] {
            assert_eq!(
                mysql_text_equality(Some(collation)),
                Equality::Folded,
                "{collation}"
            );
        }
        for collation in [
            "latin1_swedish_ci",
            "utf8mb4_hungarian_ci",
            "utf8mb4_hu_0900_ai_ci",
            "utf8mb4_uca1400_hungarian_ai_ci",
            "swe7_swedish_ci",
            "utf8mb4_unicode_ci_extra",
        ] {
            assert_eq!(
                mysql_text_equality(Some(collation)),
                Equality::Other,
                "{collation}"
            );
        }
        assert_eq!(mysql_text_equality(None), Equality::Other);
    }

    #[test]
    fn keys_match_exactly_then_ignoring_case() {
        let t = table(&["id", "Name", "name2"]);
        assert_eq!(t.column_index("id"), Some(0));
        assert_eq!(t.column_index("ID"), Some(0));
        assert_eq!(t.column_index("name"), Some(1));
        assert_eq!(t.column_index("missing"), None);
    }

    #[test]
    fn a_hint_is_only_a_shortcut() {
        let t = table(&["id", "Name", "name2"]);
        assert_eq!(t.column_index_from("Name", 1), Some(1), "hit");
        assert_eq!(t.column_index_from("name2", 1), Some(2), "miss: looked up");
        assert_eq!(
            t.column_index_from("NAME", 1),
            Some(1),
            "case folded as before"
        );
        assert_eq!(t.column_index_from("id", 3), Some(0), "past the end");
        assert_eq!(t.column_index_from("missing", 0), None);
    }

    #[test]
    fn ambiguous_case_insensitive_match_is_no_match() {
        let t = table(&["Id", "ID"]);
        assert_eq!(t.column_index("Id"), Some(0));
        assert_eq!(t.column_index("id"), None);
    }
}
