//! Two batches of one task written at once, without changing what the table ends up holding.
//!
//! Batches that share no primary key commute: each transaction touches rows the other does not,
//! so they may be written together and commit in either order. A batch that shares a key with
//! the one still being written waits until that one is done, so every key's changes apply in
//! the order they were read, across retries, bisected runs and deletes. Keys here are every
//! column set the table holds unique, not only the one Upsert finds rows by: a batch writing a
//! value of another unique column that the batch before it has yet to clear would otherwise be
//! refused, and under Insert the later of two rows sharing a unique value could be stored in
//! place of the earlier. Offsets commit in batch order regardless (`pipeline.rs`).
//!
//! Keys are compared by hash of a form all values the database holds equal share
//! ([`crate::table::Column::canonical`]: `01`, `+1` and `1` are one whole number; MySQL text
//! folded for case and trailing spaces). A batch with a key of no such form (numerics,
//! timestamps, text beyond printable ASCII under a collation) waits as if it shared one. Folded
//! text that only looks alike, and a hash collision, only make a batch wait when it need not.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::change::{Change, Op};
use crate::table::{Equality, Table};

/// The primary keys a batch writes or deletes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keys {
    hashes: HashSet<u64>,
    /// Some key has no canonical form here: it may equal any other.
    opaque: bool,
    /// The unique keys and value forms the hashes were computed by; `None` for a batch without
    /// rows. The table's description is read again while the sink runs, and hashes of two
    /// descriptions do not compare (a unique key added, a set's place in the list moved).
    description: Option<u64>,
}

impl Keys {
    fn is_empty(&self) -> bool {
        self.hashes.is_empty() && !self.opaque
    }

    /// Whether no key of one can be a key of the other.
    pub fn is_disjoint(&self, other: &Keys) -> bool {
        match (self.description, other.description) {
            (None, _) | (_, None) => true,
            (Some(ours), Some(theirs)) if ours != theirs => false,
            _ => {
                self.is_empty()
                    || other.is_empty()
                    || (!self.opaque && !other.opaque && self.hashes.is_disjoint(&other.hashes))
            }
        }
    }
}

/// What the hashes of [`keys`] depend on: each set's columns, by name, with how they compare,
/// and whether rows are tied otherwise.
fn description(sets: &[&[usize]], table: &Table) -> u64 {
    let mut hasher = DefaultHasher::new();
    table.entangled.hash(&mut hasher);
    for set in sets {
        set.len().hash(&mut hasher);
        for column in set.iter().filter_map(|c| table.columns.get(*c)) {
            (&column.name, column.equality, column.sequence).hash(&mut hasher);
        }
    }
    hasher.finish()
}

#[derive(Debug, Clone)]
enum Stage {
    /// Not yet decoded: its keys are unknown.
    Reading,
    /// Writing rows of these keys.
    Writing(Arc<Keys>),
}

/// Held by the batch being written; dropping it tells the next batch this one is done.
#[derive(Debug)]
pub struct Progress(watch::Sender<Stage>);

/// The next batch's view of the batch before it.
#[derive(Debug)]
pub struct Predecessor(Option<watch::Receiver<Stage>>);

/// The progress of a new batch, and the handle the batch after it waits on.
pub fn pair() -> (Progress, Predecessor) {
    let (tx, rx) = watch::channel(Stage::Reading);
    (Progress(tx), Predecessor(Some(rx)))
}

/// A batch's place in its task's order: its own progress and the batch before it.
#[derive(Debug)]
pub struct Turn {
    pub progress: Progress,
    pub before: Predecessor,
}

impl Turn {
    /// Says the batch writes rows of `keys`, and waits until it may ([`Predecessor::clear`]).
    pub async fn write(
        &mut self,
        keys: Keys,
        abort: &CancellationToken,
        stop: &CancellationToken,
    ) -> Result<(), Aborted> {
        let keys = Arc::new(keys);
        self.progress.writing(keys.clone());
        self.before.clear(&keys, abort, stop).await
    }
}

impl Progress {
    /// The batch is about to write rows of `keys`.
    pub fn writing(&self, keys: Arc<Keys>) {
        self.0.send_replace(Stage::Writing(keys));
    }
}

/// Why a batch stopped waiting for its predecessor before it was clear.
#[derive(Debug, PartialEq, Eq)]
pub struct Aborted;

impl Predecessor {
    /// No batch before this one is being written.
    pub fn none() -> Self {
        Self(None)
    }

    /// Waits until rows of `keys` may be written beside the predecessor: at once when they
    /// share no key with it, else once it is done. `abort` (a revocation, or stopping) ends the
    /// wait, so a waiting batch never holds up a rebalance.
    pub async fn clear(
        &mut self,
        keys: &Keys,
        abort: &CancellationToken,
        stop: &CancellationToken,
    ) -> Result<(), Aborted> {
        let Some(rx) = &mut self.0 else {
            return Ok(());
        };
        loop {
            let clear = match &*rx.borrow_and_update() {
                Stage::Reading => false,
                Stage::Writing(theirs) => theirs.is_disjoint(keys),
            };
            if clear {
                return Ok(());
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() {
                    // Done: nothing of it is left to apply before this batch.
                    self.0 = None;
                    return Ok(());
                },
                _ = abort.cancelled() => return Err(Aborted),
                _ = stop.cancelled() => return Err(Aborted),
            }
        }
    }
}

/// The keys `rows` write: their values of every column set no two rows may share (the
/// table's unique keys and, under Upsert, `primary_key`, by which rows are found). Two batches
/// whose keys are disjoint touch no common row and trip no unique check of each other, so
/// either may commit first; without such a set (Insert into a table without unique keys) rows
/// are always independent. Under Upsert a row that sets a column of a unique key besides
/// `primary_key` makes its batch wait. A row missing a `primary_key` column is left out: it is refused
/// before it is written. A batch that deletes waits for the one before it, and the one after
/// it waits for it.
pub fn keys(rows: &[&Change<'_>], primary_key: &[usize], table: &Table) -> Keys {
    let mut keys = Keys::default();
    let same = |a: &[usize], b: &[usize]| a.len() == b.len() && a.iter().all(|c| b.contains(c));
    let mut sets: Vec<&[usize]> = table.unique.iter().map(Vec::as_slice).collect();
    if !primary_key.is_empty() && !sets.iter().any(|set| same(set, primary_key)) {
        sets.push(primary_key);
    }
    if rows.is_empty() {
        return keys;
    }
    keys.description = Some(description(&sets, table));
    if sets.is_empty() && !table.entangled {
        return keys;
    }
    let comparable = |c: &usize| {
        table
            .columns
            .get(*c)
            .is_some_and(|column| column.equality != Equality::Other)
    };
    if table.entangled || !sets.iter().all(|set| set.iter().all(comparable)) {
        keys.opaque = true;
        return keys;
    }
    'rows: for change in rows {
        // A delete locks more than its key: InnoDB's next-key locks cover the gaps around it,
        // so two batches sharing no key still wait on each other (a change stream on MariaDB
        // went 25% slower written two at once).
        if change.op == Op::Delete {
            keys.opaque = true;
            return keys;
        }
        if primary_key
            .iter()
            .any(|c| change.row.get(*c).flatten().is_none())
        {
            continue 'rows;
        }
        'sets: for (n, set) in sets.iter().enumerate() {
            // An Upsert that updates a row and sets a column of another unique key may free
            // the row's old value, which no message names, for the next batch to take.
            if !primary_key.is_empty()
                && !same(set, primary_key)
                && set.iter().any(|c| change.row.get(*c).is_some())
            {
                keys.opaque = true;
                return keys;
            }
            let mut hasher = DefaultHasher::new();
            n.hash(&mut hasher);
            for column in *set {
                let value = match change.row.get(*column) {
                    Some(Some(text)) => table.columns.get(*column).and_then(|c| c.canonical(text)),
                    // A fresh sequence value: no row holds it.
                    None if table.columns.get(*column).is_some_and(|c| c.sequence) => {
                        continue 'sets;
                    }
                    // A default or NULL, which rows may share (a constant default, a unique
                    // index whose NULLs are not distinct).
                    _ => None,
                };
                match value {
                    Some(value) => value.hash(&mut hasher),
                    None => {
                        keys.opaque = true;
                        return keys;
                    }
                }
            }
            keys.hashes.insert(hasher.finish());
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(hashes: &[u64]) -> Keys {
        Keys {
            hashes: hashes.iter().copied().collect(),
            opaque: false,
            description: Some(0),
        }
    }

    /// `id` (a sequence) and `email` whole numbers, `name` text.
    fn table(unique: &[&[usize]], entangled: bool) -> Table {
        let column = |name: &str, integer: bool, sequence: bool| crate::table::Column {
            name: name.into(),
            cast: None,
            equality: if integer {
                Equality::Integer
            } else {
                Equality::Other
            },
            defaults_to_null: false,
            sequence,
        };
        Table::new(
            "s",
            "t",
            vec![
                column("id", true, true),
                column("email", true, false),
                column("name", false, false),
            ],
        )
        .with_constraints(unique.iter().map(|u| u.to_vec()).collect(), entangled)
    }

    fn write(values: &[(usize, Option<&'static str>)]) -> Change<'static> {
        Change {
            op: Op::Write,
            row: values.iter().copied().collect(),
        }
    }

    fn of(changes: &[Change<'static>], primary_key: &[usize], table: &Table) -> Keys {
        let rows: Vec<&Change> = changes.iter().collect();
        keys(&rows, primary_key, table)
    }

    #[test]
    fn every_unique_key_of_the_table_counts_not_only_the_one_rows_are_found_by() {
        let t = table(&[&[0], &[1]], false);
        let first = of(&[write(&[(0, Some("1")), (1, Some("10"))])], &[], &t);
        let same_email = of(&[write(&[(0, Some("2")), (1, Some("10"))])], &[], &t);
        let other = of(&[write(&[(0, Some("3")), (1, Some("30"))])], &[], &t);
        assert!(!first.is_disjoint(&same_email), "a shared unique value");
        assert!(first.is_disjoint(&other));
        // The same value in two different unique columns is no conflict.
        let crossed = of(&[write(&[(0, Some("10")), (1, Some("1"))])], &[], &t);
        assert!(first.is_disjoint(&crossed));
        // Upsert: updating id 1 may free the email it had, which no message says.
        let upsert = of(&[write(&[(0, Some("1")), (1, Some("20"))])], &[0], &t);
        assert!(upsert.opaque);
        let by_id_only = table(&[&[0]], false);
        assert!(!of(&[write(&[(0, Some("1"))])], &[0], &by_id_only).opaque);
        // Upsert by email, the id a sequence the messages leave alone.
        let by_email = of(&[write(&[(1, Some("20")), (2, Some("x"))])], &[1], &t);
        assert!(!by_email.opaque && by_email.hashes.len() == 1);
        // The key named in another order than the table's.
        let pair = table(&[&[0, 1]], false);
        let row = write(&[(0, Some("1")), (1, Some("2"))]);
        assert!(!of(std::slice::from_ref(&row), &[1, 0], &pair).opaque);
    }

    #[test]
    fn insert_batches_sharing_a_unique_value_wait_and_others_go_together() {
        let t = table(&[&[0]], false);
        let a = of(&[write(&[(0, Some("1"))])], &[], &t);
        let b = of(&[write(&[(0, Some("01"))])], &[], &t);
        let c = of(&[write(&[(0, Some("2"))])], &[], &t);
        assert!(
            !a.is_disjoint(&b),
            "the later of two equal keys must not win"
        );
        assert!(a.is_disjoint(&c));
        let free = table(&[], false);
        assert!(
            of(&[write(&[(0, Some("1"))])], &[], &free).is_empty(),
            "a table without unique keys: rows never conflict"
        );
    }

    /// The description is read again while the sink runs: a batch keyed by the new one waits
    /// for the batch before it if the unique keys changed in between, whatever its values.
    #[test]
    fn batches_keyed_by_different_descriptions_of_the_table_wait() {
        let before = table(&[&[0]], false);
        let after = table(&[&[1], &[0]], false);
        let row = |id| write(&[(0, Some(id)), (1, Some("7"))]);
        let old = of(&[row("1")], &[], &before);
        assert!(
            !old.is_disjoint(&of(&[row("1")], &[], &after)),
            "id 1 under both: its key's place in the list moved"
        );
        assert!(!old.is_disjoint(&of(&[row("2")], &[], &after)));
        assert!(old.is_disjoint(&of(&[row("2")], &[], &table(&[&[0]], false))));
        let free = table(&[], false);
        assert!(
            !of(&[row("1")], &[], &free).is_disjoint(&of(&[row("2")], &[], &before)),
            "a unique key created: the batch before had no keys"
        );
        assert!(old.is_disjoint(&of(&[], &[], &after)), "no rows");
    }

    #[test]
    fn values_rows_may_share_without_saying_so_make_a_batch_wait() {
        let t = table(&[&[0], &[1]], false);
        let fresh_id = of(&[write(&[(1, Some("5"))])], &[], &t);
        assert!(!fresh_id.opaque, "a sequence value left out is no one's");
        assert_eq!(fresh_id.hashes.len(), 1);
        for row in [
            write(&[(0, Some("5"))]),                 // email's default
            write(&[(0, Some("5")), (1, None)]),      // NULL
            write(&[(0, Some("5")), (1, Some("x"))]), // not a whole number
        ] {
            assert!(of(&[row], &[], &t).opaque);
        }
        let text = table(&[&[0], &[2]], false);
        assert!(of(&[write(&[(0, Some("1")), (2, Some("a"))])], &[], &text).opaque);
        let related = table(&[&[0]], true);
        assert!(of(&[write(&[(0, Some("1"))])], &[], &related).opaque);
        assert!(
            of(&[write(&[(0, Some("1"))])], &[], &table(&[], true)).opaque,
            "entangled without unique keys"
        );
    }

    #[test]
    fn an_opaque_batch_may_share_a_key_with_any_batch_but_insert_has_none() {
        let opaque = Keys {
            opaque: true,
            ..set(&[])
        };
        assert!(!opaque.is_disjoint(&set(&[1])));
        assert!(opaque.is_disjoint(&set(&[])), "Insert has no keys");
        assert!(set(&[1, 2]).is_disjoint(&set(&[3])));
        assert!(!set(&[1, 2]).is_disjoint(&set(&[2])));
    }

    #[tokio::test]
    async fn a_batch_sharing_no_key_goes_once_its_predecessor_has_decoded() {
        let (progress, mut next) = pair();
        let (abort, stop) = (CancellationToken::new(), CancellationToken::new());
        let keys = set(&[3, 4]);
        let wait = next.clear(&keys, &abort, &stop);
        tokio::pin!(wait);
        assert!(
            futures::poll!(wait.as_mut()).is_pending(),
            "keys unknown yet"
        );
        progress.writing(Arc::new(set(&[1, 2])));
        assert_eq!(wait.await, Ok(()));
    }

    #[tokio::test]
    async fn a_batch_sharing_a_key_waits_until_its_predecessor_is_done() {
        let (progress, mut next) = pair();
        let (abort, stop) = (CancellationToken::new(), CancellationToken::new());
        progress.writing(Arc::new(set(&[1, 2])));
        let keys = set(&[2, 3]);
        {
            let wait = next.clear(&keys, &abort, &stop);
            tokio::pin!(wait);
            assert!(futures::poll!(wait.as_mut()).is_pending());
            // A retry that decodes again publishes the same keys: still not clear.
            progress.writing(Arc::new(set(&[1, 2])));
            assert!(futures::poll!(wait.as_mut()).is_pending());
            drop(progress);
            assert_eq!(wait.await, Ok(()));
        }
        assert_eq!(
            next.clear(&set(&[2]), &abort, &stop).await,
            Ok(()),
            "done stays done"
        );
    }

    #[tokio::test]
    async fn a_revocation_ends_the_wait() {
        let (progress, mut next) = pair();
        let (abort, stop) = (CancellationToken::new(), CancellationToken::new());
        progress.writing(Arc::new(set(&[1])));
        abort.cancel();
        assert_eq!(next.clear(&set(&[1]), &abort, &stop).await, Err(Aborted));
        assert_eq!(
            Predecessor::none().clear(&set(&[1]), &abort, &stop).await,
            Ok(()),
            "the first batch never waits"
        );
    }
}
