//! Upsert's one meaning on both databases: a message updates the columns it carries and leaves
//! the others as they are, applied in order. A statement may not touch a row twice (PostgreSQL
//! refuses, and a batch must not depend on where its boundaries fall), so the rows of one
//! batch that share a key are first merged, in order, into one row per key.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::hash_map::Entry;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use crate::decode::Row;

/// What one key of the batch comes to.
enum Slot<'a> {
    One(&'a Row<'a>),
    /// Columns of several messages, later values over earlier ones.
    Merged(BTreeMap<usize, Option<&'a str>>),
}

/// One row per primary key, in the order each key first appears; a key seen more than once
/// carries every column any of its messages set, each with the value of the last message that
/// set it. Rows with a missing or null key column are never merged (they are rejected before
/// writing; this keeps them apart regardless). Rows borrowed when their key appears once.
pub fn coalesce<'a>(rows: &[&'a Row<'a>], primary_key: &[usize]) -> Vec<Cow<'a, Row<'a>>> {
    if primary_key.is_empty() {
        return rows.iter().map(|r| Cow::Borrowed(*r)).collect();
    }
    let mut first: HashMap<Vec<&'a str>, usize> = HashMap::default();
    first.reserve(rows.len());
    let mut slots: Vec<Slot<'a>> = Vec::with_capacity(rows.len());
    for row in rows {
        let key: Option<Vec<&'a str>> = primary_key.iter().map(|c| row.get(*c).flatten()).collect();
        let Some(key) = key else {
            slots.push(Slot::One(row));
            continue;
        };
        match first.entry(key) {
            Entry::Vacant(e) => {
                e.insert(slots.len());
                slots.push(Slot::One(row));
            }
            Entry::Occupied(e) => {
                let slot = &mut slots[*e.get()];
                if let &mut Slot::One(earlier) = slot {
                    *slot = Slot::Merged(earlier.values().collect());
                }
                if let Slot::Merged(columns) = slot {
                    columns.extend(row.values());
                }
            }
        }
    }
    slots
        .into_iter()
        .map(|slot| match slot {
            Slot::One(row) => Cow::Borrowed(row),
            Slot::Merged(columns) => Cow::Owned(columns.into_iter().collect::<Row<'static>>()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[(usize, Option<&str>)]) -> Row<'static> {
        values.iter().copied().collect()
    }

    fn values(rows: &[Cow<'_, Row<'_>>]) -> Vec<Vec<(usize, Option<String>)>> {
        rows.iter()
            .map(|r| {
                r.values()
                    .map(|(c, v)| (c, v.map(str::to_string)))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn partial_updates_of_one_key_merge_in_order() {
        let insert = row(&[(0, Some("1")), (1, Some("a")), (2, Some("x"))]);
        let other = row(&[(0, Some("2")), (1, Some("b"))]);
        let update_name = row(&[(0, Some("1")), (1, Some("A"))]);
        let clear_note = row(&[(0, Some("1")), (2, None)]);
        let merged = coalesce(&[&insert, &other, &update_name, &clear_note], &[0]);
        assert_eq!(
            values(&merged),
            vec![
                vec![(0, Some("1".into())), (1, Some("A".into())), (2, None)],
                vec![(0, Some("2".into())), (1, Some("b".into()))],
            ]
        );
        assert!(
            matches!(merged[1], Cow::Borrowed(_)),
            "a lone key is not copied"
        );
    }

    #[test]
    fn composite_keys_compare_every_column() {
        let a = row(&[(0, Some("1")), (1, Some("x")), (2, Some("old"))]);
        let b = row(&[(0, Some("1")), (1, Some("y")), (2, Some("other"))]);
        let c = row(&[(0, Some("1")), (1, Some("x")), (2, Some("new"))]);
        let merged = coalesce(&[&a, &b, &c], &[0, 1]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].get(2), Some(Some("new")));
    }

    #[test]
    fn rows_without_a_usable_key_are_never_merged() {
        let null_key = row(&[(0, None), (1, Some("a"))]);
        let no_key = row(&[(1, Some("b"))]);
        let merged = coalesce(&[&null_key, &null_key, &no_key, &no_key], &[0]);
        assert_eq!(merged.len(), 4);
    }

    #[test]
    fn insert_mode_passes_rows_through() {
        let a = row(&[(0, Some("1"))]);
        assert_eq!(coalesce(&[&a, &a], &[]).len(), 2);
    }
}
