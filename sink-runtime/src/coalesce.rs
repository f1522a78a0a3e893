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
use crate::table::{Canonical, Column, Table};

/// The row one key of the batch writes.
enum Slot<'a> {
    None,
    One(&'a Row<'a>),
    /// Columns of several messages, later values over earlier ones.
    Merged(BTreeMap<usize, Option<&'a str>>),
}

/// What one key of the batch comes to.
struct Fold<'a> {
    /// A delete of the key: it runs before any write of its plan.
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

/// One key column's value as keys fold here: its canonical form where distinct forms are
/// distinct values ([`Column::exact`]: `01` and `1` are one whole number), else its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part<'a> {
    Known(Canonical<'a>),
    Text(&'a str),
}

type Key<'a> = Vec<Part<'a>>;

/// What keys the database may hold equal share: per column a canonical form, or none where
/// the value may equal any ([`Column::canonical`]).
type Class<'a> = Vec<Option<Canonical<'a>>>;

/// Folds `changes` per primary key, in order, into plans to apply one after the other. Without
/// a key (Insert mode) rows pass through, in one plan. Rows with a missing or null key column
/// are never merged (they are rejected before writing; this keeps them apart regardless). Rows
/// are borrowed when their key appears once.
///
/// A plan runs its deletes first, then one row per key where the key first appears, the rows
/// grouped by the columns they set (`dialect.rs`). Keys with different texts the database holds
/// equal (`ABC` and `abc` under a case-insensitive collation, `1.0` and `1.00`) would then move
/// changes of one row past each other, so a change whose key may equal another key the plan
/// writes starts a new plan. Where keys fall in classes of their own (whole numbers, text as
/// written, folded or trimmed text), that is a change whose class holds another key. Where a key
/// may equal any other (a numeric, a timestamp, text no rule here folds), it is a delete after a
/// write of another key, a second write of a key after a write of another, and a row whose
/// columns differ from the plan's rows (whose groups would not keep their order). Keys of whole
/// numbers and of text compared as written never split a batch.
pub fn plan<'a>(changes: &[&'a Change<'a>], primary_key: &[usize], table: &Table) -> Vec<Plan<'a>> {
    if primary_key.is_empty() {
        return vec![Plan {
            deletes: Vec::new(),
            rows: changes
                .iter()
                .filter(|c| c.op == Op::Write)
                .map(|c| Cow::Borrowed(&c.row))
                .collect(),
        }];
    }
    let columns: Vec<Option<&Column>> = primary_key.iter().map(|c| table.columns.get(*c)).collect();
    let exact = columns.iter().all(|c| c.is_some_and(Column::exact));
    let mut plans = Vec::new();
    let mut segment = Segment::with_capacity(changes.len());
    for change in changes {
        let row = &change.row;
        let key: Option<Key<'a>> = primary_key
            .iter()
            .zip(&columns)
            .map(|(c, column)| {
                let text = row.get(*c).flatten()?;
                Some(
                    match column.filter(|c| c.exact()).and_then(|c| c.canonical(text)) {
                        Some(canonical) => Part::Known(canonical),
                        None => Part::Text(text),
                    },
                )
            })
            .collect();
        let Some(key) = key else {
            segment.add(change, None);
            continue;
        };
        // A whole-number key in its canonical form is the only spelling of its value.
        let class: Option<Class<'a>> = (!exact || key.iter().any(|p| matches!(p, Part::Text(_))))
            .then(|| {
                primary_key
                    .iter()
                    .zip(&columns)
                    .map(|(c, column)| {
                        let text = row.get(*c).flatten()?;
                        column.and_then(|column| column.canonical(text))
                    })
                    .collect()
            });
        if segment.would_reorder(change, &key, class.as_ref()) {
            plans.push(std::mem::replace(&mut segment, Segment::with_capacity(0)).into_plan());
        }
        if change.op == Op::Write {
            segment.note_write(row, &key, class);
        }
        segment.add(change, Some(key));
    }
    plans.push(segment.into_plan());
    plans
}

/// A key seen written, and whether writes of other keys were seen with it.
type Seen<'a> = Option<(Key<'a>, bool)>;

/// Changes folded per key, to be applied as one plan.
struct Segment<'a> {
    first: HashMap<Key<'a>, usize>,
    folds: Vec<Fold<'a>>,
    /// Writes of keys that may have other spellings, by class.
    written: HashMap<Class<'a>, (Key<'a>, bool)>,
    /// Every write.
    any: Seen<'a>,
    /// Some write's key may equal any key.
    wild: bool,
    /// The columns every row of the plan sets, until `mixed`.
    columns: Option<Vec<usize>>,
    /// Rows of the plan set different columns: they are written in groups.
    mixed: bool,
    /// `columns` and `mixed` left unkept for rows whose keys have one spelling: they only
    /// matter once a key that may equal any comes, and are then read from the folds.
    unkept: bool,
}

impl<'a> Segment<'a> {
    fn with_capacity(n: usize) -> Self {
        let mut first = HashMap::default();
        first.reserve(n);
        Self {
            first,
            folds: Vec::with_capacity(n),
            written: HashMap::default(),
            any: None,
            wild: false,
            columns: None,
            mixed: false,
            unkept: false,
        }
    }

    /// Whether `change`, of `key`, would be applied out of order with a change of this plan
    /// that the database may hold to be of the same row. No class: a key that is the only
    /// spelling of its value.
    fn would_reorder(
        &mut self,
        change: &Change<'a>,
        key: &Key<'a>,
        class: Option<&Class<'a>>,
    ) -> bool {
        let other = |(seen, several): &(Key<'a>, bool)| *several || seen != key;
        let another = self.any.as_ref().is_some_and(other);
        let wild = self.wild || class.is_some_and(|c| c.iter().any(Option::is_none));
        if !wild {
            return class.is_some_and(|class| self.written.get(class).is_some_and(other));
        }
        match change.op {
            Op::Delete => another,
            Op::Write if self.first.contains_key(key) => another,
            Op::Write => {
                self.keep_columns();
                self.any.is_some()
                    && (self.mixed
                        || !self
                            .columns
                            .as_ref()
                            .is_some_and(|c| c.iter().copied().eq(change.row.columns())))
            }
        }
    }

    fn note_write(&mut self, row: &Row<'a>, key: &Key<'a>, class: Option<Class<'a>>) {
        if class.is_none() && !self.wild {
            self.unkept = true;
        } else {
            self.keep_columns();
            let alone = self
                .any
                .as_ref()
                .is_none_or(|(seen, several)| !several && seen == key);
            match &mut self.columns {
                None => self.columns = Some(row.columns().collect()),
                Some(columns) if columns.iter().copied().eq(row.columns()) => {}
                // The plan's one row, merged: it sets both.
                Some(columns) if alone => {
                    columns.extend(row.columns());
                    columns.sort_unstable();
                    columns.dedup();
                }
                Some(_) => self.mixed = true,
            }
        }
        let note = |seen: &mut Seen<'a>| match seen {
            None => *seen = Some((key.clone(), false)),
            Some((_, true)) => {}
            Some((first, several)) => *several = first != key,
        };
        note(&mut self.any);
        if let Some(class) = class {
            self.wild |= class.iter().any(Option::is_none);
            let mut seen = self.written.remove(&class);
            note(&mut seen);
            self.written.extend(seen.map(|seen| (class, seen)));
        }
    }

    /// Reads `columns` and `mixed` from the rows folded so far, if they were left unkept.
    fn keep_columns(&mut self) {
        if !std::mem::take(&mut self.unkept) {
            return;
        }
        let (mut columns, mut mixed) = (None::<Vec<usize>>, false);
        for fold in &self.folds {
            let set: Vec<usize> = match &fold.row {
                Slot::None => continue,
                Slot::One(row) => row.columns().collect(),
                Slot::Merged(values) => values.keys().copied().collect(),
            };
            match &columns {
                None => columns = Some(set),
                Some(c) => mixed |= *c != set,
            }
        }
        self.columns = columns;
        self.mixed = mixed;
    }

    fn add(&mut self, change: &'a Change<'a>, key: Option<Key<'a>>) {
        let row = &change.row;
        let folds = &mut self.folds;
        let mut new_fold = || {
            folds.push(Fold {
                delete: None,
                row: Slot::None,
            });
            folds.len() - 1
        };
        // A row without a usable key folds with nothing.
        let index = match key {
            Some(key) => *self.first.entry(key).or_insert_with(new_fold),
            None => new_fold(),
        };
        let fold = &mut self.folds[index];
        match change.op {
            Op::Delete => {
                fold.delete = Some(row);
                fold.row = Slot::None;
                // The columns the plan's rows set may have been those of the row deleted.
                self.unkept = true;
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

    fn into_plan(self) -> Plan<'a> {
        let mut plan = Plan::default();
        for fold in self.folds {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Equality;

    /// Key columns 0 and 1 compared as `equality`.
    fn table(equality: Equality) -> Table {
        let column = |name: &str| Column {
            name: name.into(),
            cast: None,
            equality,
            defaults_to_null: false,
            sequence: false,
        };
        Table::new("s", "t", vec![column("id"), column("k"), column("v")])
    }

    /// The one plan of a batch whose keys (a whole number, then text compared as written)
    /// never split it.
    fn one<'a>(changes: &[&'a Change<'a>], primary_key: &[usize]) -> Plan<'a> {
        let mut table = table(Equality::Integer);
        table.columns[1].equality = Equality::Text;
        let mut plans = plan(changes, primary_key, &table);
        assert_eq!(plans.len(), 1);
        plans.remove(0)
    }

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
        let merged = one(&[&insert, &other, &update_name, &clear_note], &[0]);
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
        let merged = one(&[&a, &b, &c], &[0, 1]);
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
        let p = one(&[&insert, &gone, &again, &other, &deleted_last], &[0]);
        assert_eq!(keys(&p.deletes), vec!["1", "2"]);
        assert_eq!(
            values(&p.rows),
            vec![vec![(0, Some("1".into())), (1, Some("b".into()))]],
            "the re-inserted row does not keep the deleted row's x"
        );
    }

    /// The plans (each its deletes first, then its writes) leave every key as applying the
    /// changes one by one would, for histories of inserts, partial updates and deletes over a
    /// few keys, each spelled several ways the database holds equal: whole numbers with
    /// leading zeros and signs, and text under a case-insensitive collation.
    #[test]
    fn the_plans_end_each_key_where_the_history_does() {
        type State = BTreeMap<String, BTreeMap<usize, Option<String>>>;
        /// How a column compares, three keys in their spellings, and the value they spell.
        type Case = (Equality, [&'static [&'static str]; 3], fn(&str) -> String);
        let cases: [Case; 3] = [
            (
                Equality::Integer,
                [&["0", "00", "+0"], &["1", "01", "1.0"], &["2", " 2"]],
                |id| id.trim().parse::<f64>().unwrap().to_string(),
            ),
            (
                Equality::Folded,
                [&["k1", "K1", "k1 "], &["k2", "K2"], &["é", "É"]],
                |id| id.trim_end().to_lowercase(),
            ),
            (
                Equality::Other,
                [&["a", "A"], &["b", "B"], &["c"]],
                str::to_lowercase,
            ),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for (equality, spellings, same) in cases {
            let table = table(equality);
            let apply_write = |state: &mut State, row: &Row<'_>| {
                let key = same(row.get(0).flatten().unwrap_or_default());
                let entry = state.entry(key).or_default();
                for (c, v) in row.values().filter(|(c, _)| *c != 0) {
                    entry.insert(c, v.map(str::to_string));
                }
            };
            let values: Vec<String> = (0..20).map(|v| format!("v{v}")).collect();
            for _ in 0..2000 {
                let mut base = State::new();
                for ids in spellings {
                    if next(2) == 0 {
                        base.insert(same(ids[0]), [(1, Some("base".into()))].into());
                    }
                }
                let changes: Vec<Change<'_>> = (0..next(12))
                    .map(|_| {
                        let ids = spellings[next(3) as usize];
                        let id = ids[next(ids.len() as u64) as usize];
                        match next(3) {
                            0 => Change {
                                op: Op::Delete,
                                row: [(0, Some(id))].into_iter().collect(),
                            },
                            _ => {
                                // Column 1, column 2, or both.
                                let set = 1 + next(3) as usize;
                                let mut cells = vec![(0, Some(id))];
                                for column in [1, 2] {
                                    if set & column != 0 {
                                        cells.push((
                                            column,
                                            Some(values[next(20) as usize].as_str()),
                                        ));
                                    }
                                }
                                Change {
                                    op: Op::Write,
                                    row: cells.into_iter().collect(),
                                }
                            }
                        }
                    })
                    .collect();
                let mut expected = base.clone();
                for change in &changes {
                    match change.op {
                        Op::Delete => {
                            expected.remove(&same(change.row.get(0).flatten().unwrap_or_default()));
                        }
                        Op::Write => apply_write(&mut expected, &change.row),
                    }
                }
                let refs: Vec<&Change<'_>> = changes.iter().collect();
                let mut got = base;
                for p in plan(&refs, &[0], &table) {
                    for key in keys(&p.deletes) {
                        got.remove(&same(&key));
                    }
                    // Written as the dialect writes them: grouped by the columns they set,
                    // groups in column order, rows in order within a group.
                    let mut rows: Vec<&Row<'_>> = p.rows.iter().map(AsRef::as_ref).collect();
                    rows.sort_by_key(|r| r.columns().collect::<Vec<_>>());
                    for row in rows {
                        apply_write(&mut got, row);
                    }
                }
                assert_eq!(got, expected, "{equality:?}: {changes:?}");
            }
        }
    }

    #[test]
    fn a_change_that_would_move_past_another_spelling_of_its_key_starts_a_plan() {
        let count = |equality, changes: &[&Change<'_>]| plan(changes, &[0], &table(equality)).len();
        let (upper, lower) = (write(&[(0, Some("ABC"))]), delete("abc"));
        let (one, other) = (write(&[(0, Some("1"))]), delete("2"));
        assert_eq!(count(Equality::Other, &[&upper, &lower]), 2);
        assert_eq!(
            count(Equality::Text, &[&upper, &lower]),
            1,
            "texts compared as written"
        );
        assert_eq!(
            count(Equality::Other, &[&lower, &upper]),
            1,
            "a delete first is in order"
        );
        assert_eq!(count(Equality::Integer, &[&one, &other]), 1);
        assert_eq!(
            count(Equality::Integer, &[&one, &delete("01")]),
            1,
            "one key, folded"
        );
        assert_eq!(
            count(Equality::Integer, &[&one, &delete("1.0")]),
            2,
            "1.0 may be 1"
        );
        // A composite key agreeing on its whole number may be one key; else not.
        let mixed = |equality| {
            let column = |name: &str, equality| Column {
                name: name.into(),
                cast: None,
                equality,
                defaults_to_null: false,
                sequence: false,
            };
            Table::new(
                "s",
                "t",
                vec![column("id", Equality::Integer), column("k", equality)],
            )
        };
        let row = |id, k| write(&[(0, Some(id)), (1, Some(k))]);
        let gone = |id, k| Change {
            op: Op::Delete,
            row: [(0, Some(id)), (1, Some(k))].into_iter().collect(),
        };
        let t = mixed(Equality::Folded);
        assert_eq!(
            plan(&[&row("1", "a"), &gone("2", "A")], &[0, 1], &t).len(),
            1
        );
        assert_eq!(
            plan(&[&row("1", "a"), &gone("1", "A")], &[0, 1], &t).len(),
            2
        );
        assert_eq!(
            plan(&[&row("1", "a"), &gone("1", "a")], &[0, 1], &t).len(),
            1
        );
        assert_eq!(
            plan(&[&row("1", "a"), &gone("1", "b")], &[0, 1], &t).len(),
            1
        );
        // A column of no known form: any two keys may be one.
        let t = mixed(Equality::Other);
        assert_eq!(
            plan(&[&row("1", "a"), &gone("2", "b")], &[0, 1], &t).len(),
            2
        );
        // Writes of two spellings in one plan could be grouped out of order.
        let t = table(Equality::Folded);
        let (a, b, again, other) = (
            write(&[(0, Some("a")), (1, Some("x"))]),
            write(&[(0, Some("A")), (1, Some("y")), (2, Some("y"))]),
            write(&[(0, Some("a")), (1, Some("z"))]),
            write(&[(0, Some("b")), (2, Some("z"))]),
        );
        assert_eq!(plan(&[&a, &b, &again], &[0], &t).len(), 3);
        assert_eq!(plan(&[&a, &again, &b], &[0], &t).len(), 2);
        assert_eq!(plan(&[&a, &other, &again], &[0], &t).len(), 1, "b is not a");
        // Keys that may equal any: a row setting other columns than the plan's starts one.
        let t = table(Equality::Other);
        let same_columns = write(&[(0, Some("c")), (1, Some("w"))]);
        assert_eq!(plan(&[&a, &same_columns], &[0], &t).len(), 1);
        assert_eq!(plan(&[&a, &other], &[0], &t).len(), 2);
        assert_eq!(plan(&[&a, &again, &other], &[0], &t).len(), 2);
    }

    #[test]
    fn rows_without_a_usable_key_are_never_merged() {
        let null_key = write(&[(0, None), (1, Some("a"))]);
        let no_key = write(&[(1, Some("b"))]);
        let merged = one(&[&null_key, &null_key, &no_key, &no_key], &[0]);
        assert_eq!(merged.rows.len(), 4);
    }

    #[test]
    fn insert_mode_passes_rows_through() {
        let a = write(&[(0, Some("1"))]);
        assert_eq!(one(&[&a, &a], &[]).rows.len(), 2);
    }
}
