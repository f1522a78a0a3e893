//! Upsert's one meaning on both databases: a message updates the columns it carries and leaves
//! the others as they are, a delete removes the row of its key, all applied in order. A
//! statement may not touch a row twice (PostgreSQL refuses, and a batch must not depend on where
//! its boundaries fall), so the changes of one batch that share a key are first folded, in
//! order, into what the key comes to: deleted or not, and at most one row to write after that.

use std::borrow::Cow;
use std::collections::BTreeMap;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use crate::change::{Change, Op};
use crate::decode::Row;

/// The row one key of the batch writes.
enum Slot<'a> {
    None,
    One(&'a Row<'a>),
    /// Columns of several messages, later values over earlier ones.
    Merged(BTreeMap<usize, Option<&'a str>>),
}

/// What one key of the batch comes to.
struct Fold<'a> {
    /// A delete of the key: it runs before any write of the batch.
    delete: Option<&'a Row<'a>>,
    /// What is written after it: only the columns set since the last delete, so a row deleted
    /// and inserted again does not keep the deleted row's values.
    row: Slot<'a>,
}

/// A batch folded per key: the keys to delete first, then the rows to write.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Rows carrying the keys to delete (other columns are ignored).
    pub deletes: Vec<&'a Row<'a>>,
    /// One row per key, in the order each key first appears; a key written more than once
    /// carries every column its writes since its last delete set, each with the last value.
    pub rows: Vec<Cow<'a, Row<'a>>>,
}

/// Folds `changes` per primary key, in order. Without a key (Insert mode) rows pass through.
/// Rows with a missing or null key column are never merged (they are rejected before
/// writing; this keeps them apart regardless). Rows are borrowed when their key appears once.
pub fn plan<'a>(changes: &[&'a Change<'a>], primary_key: &[usize]) -> Plan<'a> {
    if primary_key.is_empty() {
        return Plan {
            deletes: Vec::new(),
            rows: changes
                .iter()
                .filter(|c| c.op == Op::Write)
                .map(|c| Cow::Borrowed(&c.row))
                .collect(),
        };
    }
    let mut first: HashMap<Vec<&'a str>, usize> = HashMap::default();
    first.reserve(changes.len());
    let mut folds: Vec<Fold<'a>> = Vec::with_capacity(changes.len());
    for change in changes {
        let row = &change.row;
        let key: Option<Vec<&'a str>> = primary_key.iter().map(|c| row.get(*c).flatten()).collect();
        let mut new_fold = || {
            folds.push(Fold {
                delete: None,
                row: Slot::None,
            });
            folds.len() - 1
        };
        // A row without a usable key folds with nothing.
        let index = match key {
            Some(key) => *first.entry(key).or_insert_with(new_fold),
            None => new_fold(),
        };
        let fold = &mut folds[index];
        match change.op {
            Op::Delete => {
                fold.delete = Some(row);
                fold.row = Slot::None;
            }
            Op::Write => match &mut fold.row {
                Slot::None => fold.row = Slot::One(row),
                Slot::One(earlier) => {
                    let mut columns: BTreeMap<_, _> = earlier.values().collect();
                    columns.extend(row.values());
                    fold.row = Slot::Merged(columns);
                }
                Slot::Merged(columns) => columns.extend(row.values()),
            },
        }
    }
    let mut plan = Plan::default();
    for fold in folds {
        plan.deletes.extend(fold.delete);
        match fold.row {
            Slot::None => {}
            Slot::One(row) => plan.rows.push(Cow::Borrowed(row)),
            Slot::Merged(columns) => plan
                .rows
                .push(Cow::Owned(columns.into_iter().collect::<Row<'static>>())),
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(values: &[(usize, Option<&str>)]) -> Change<'static> {
        Change {
            op: Op::Write,
            row: values.iter().copied().collect(),
        }
    }

    fn delete(id: &str) -> Change<'static> {
        Change {
            op: Op::Delete,
            row: [(0, Some(id))].into_iter().collect(),
        }
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

    fn keys(rows: &[&Row<'_>]) -> Vec<String> {
        rows.iter()
            .map(|r| r.get(0).flatten().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn partial_updates_of_one_key_merge_in_order() {
        let insert = write(&[(0, Some("1")), (1, Some("a")), (2, Some("x"))]);
        let other = write(&[(0, Some("2")), (1, Some("b"))]);
        let update_name = write(&[(0, Some("1")), (1, Some("A"))]);
        let clear_note = write(&[(0, Some("1")), (2, None)]);
        let merged = plan(&[&insert, &other, &update_name, &clear_note], &[0]);
        assert!(merged.deletes.is_empty());
        assert_eq!(
            values(&merged.rows),
            vec![
                vec![(0, Some("1".into())), (1, Some("A".into())), (2, None)],
                vec![(0, Some("2".into())), (1, Some("b".into()))],
            ]
        );
        assert!(
            matches!(merged.rows[1], Cow::Borrowed(_)),
            "a lone key is not copied"
        );
    }

    #[test]
    fn composite_keys_compare_every_column() {
        let a = write(&[(0, Some("1")), (1, Some("x")), (2, Some("old"))]);
        let b = write(&[(0, Some("1")), (1, Some("y")), (2, Some("other"))]);
        let c = write(&[(0, Some("1")), (1, Some("x")), (2, Some("new"))]);
        let merged = plan(&[&a, &b, &c], &[0, 1]);
        assert_eq!(merged.rows.len(), 2);
        assert_eq!(merged.rows[0].get(2), Some(Some("new")));
    }

    #[test]
    fn a_delete_discards_earlier_writes_and_a_later_insert_starts_afresh() {
        let insert = write(&[(0, Some("1")), (1, Some("a")), (2, Some("x"))]);
        let gone = delete("1");
        let again = write(&[(0, Some("1")), (1, Some("b"))]);
        let other = write(&[(0, Some("2")), (1, Some("c"))]);
        let deleted_last = delete("2");
        let p = plan(&[&insert, &gone, &again, &other, &deleted_last], &[0]);
        assert_eq!(keys(&p.deletes), vec!["1", "2"]);
        assert_eq!(
            values(&p.rows),
            vec![vec![(0, Some("1".into())), (1, Some("b".into()))]],
            "the re-inserted row does not keep the deleted row's x"
        );
    }

    /// The plan (deletes first, then writes) leaves every key as applying the changes one
    /// by one would, for histories of inserts, partial updates and deletes over a few keys.
    #[test]
    fn a_plan_ends_each_key_where_the_history_does() {
        type State = BTreeMap<String, BTreeMap<usize, Option<String>>>;
        fn apply_write(state: &mut State, row: &Row<'_>) {
            let key = row.get(0).flatten().unwrap_or_default().to_string();
            let entry = state.entry(key).or_default();
            for (c, v) in row.values() {
                entry.insert(c, v.map(str::to_string));
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..500 {
            let mut base = State::new();
            for k in 0..3 {
                if next(2) == 0 {
                    base.insert(
                        k.to_string(),
                        [(0, Some(k.to_string())), (1, Some("base".into()))].into(),
                    );
                }
            }
            let ids: Vec<String> = (0..3).map(|k| k.to_string()).collect();
            let values: Vec<String> = (0..20).map(|v| format!("v{v}")).collect();
            let changes: Vec<Change<'_>> = (0..next(12))
                .map(|_| {
                    let id = &ids[next(3) as usize];
                    match next(3) {
                        0 => Change {
                            op: Op::Delete,
                            row: [(0, Some(id.as_str()))].into_iter().collect(),
                        },
                        _ => {
                            let column = 1 + next(2) as usize;
                            Change {
                                op: Op::Write,
                                row: [
                                    (0, Some(id.as_str())),
                                    (column, Some(values[next(20) as usize].as_str())),
                                ]
                                .into_iter()
                                .collect(),
                            }
                        }
                    }
                })
                .collect();
            let mut expected = base.clone();
            for change in &changes {
                match change.op {
                    Op::Delete => {
                        expected.remove(change.row.get(0).flatten().unwrap_or_default());
                    }
                    Op::Write => apply_write(&mut expected, &change.row),
                }
            }
            let refs: Vec<&Change<'_>> = changes.iter().collect();
            let p = plan(&refs, &[0]);
            let mut got = base;
            for key in keys(&p.deletes) {
                got.remove(&key);
            }
            for row in &p.rows {
                apply_write(&mut got, row);
            }
            assert_eq!(got, expected, "{changes:?}");
        }
    }

    #[test]
    fn rows_without_a_usable_key_are_never_merged() {
        let null_key = write(&[(0, None), (1, Some("a"))]);
        let no_key = write(&[(1, Some("b"))]);
        let merged = plan(&[&null_key, &null_key, &no_key, &no_key], &[0]);
        assert_eq!(merged.rows.len(), 4);
    }

    #[test]
    fn insert_mode_passes_rows_through() {
        let a = write(&[(0, Some("1"))]);
        assert_eq!(plan(&[&a, &a], &[]).rows.len(), 2);
    }
}
