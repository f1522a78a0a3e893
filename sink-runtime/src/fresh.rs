//! Whether an Upsert batch is first tried as plain inserts: a `COPY` into the table on
//! PostgreSQL, the Insert mode's `INSERT`s on MySQL.
//!
//! A batch whose keys the table does not hold yet needs no merge: copied straight in, it ends
//! as the merge would leave it, and costs the database about half as much as copying into a
//! stage and merging from there; on MySQL the inserts fill left-out NULL-default columns, so
//! rows that carry different columns share a statement instead of one per set of columns.
//! Whether the keys are new is only known by trying: a key already stored makes the try fail
//! on the unique constraint, and the batch is merged instead. Topics that mostly update would
//! pay for that failed try on every batch, so each failure makes the next batches skip it,
//! twice as many after each failure in a row.

use std::sync::{Mutex, PoisonError};

/// The most batches skipped after a failed try: a topic that turns from updates to new keys
/// is copied again within this many batches.
const MAX_SKIP: u32 = 64;

/// Shared by a sink's tasks: whether keys are new is a property of the topic, not of a
/// partition.
#[derive(Debug, Default)]
pub struct Fresh(Mutex<Guess>);

impl Fresh {
    /// Whether to try this batch as a plain copy.
    pub fn worth_trying(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .worth_trying()
    }

    /// What a try came to: `copied` when every row went in.
    pub fn observe(&self, copied: bool) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(copied);
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Guess {
    /// Batches still to merge without trying.
    skip: u32,
    /// Batches the next failure makes skip, halved by each success.
    penalty: u32,
}

impl Guess {
    fn worth_trying(&mut self) -> bool {
        if self.skip == 0 {
            return true;
        }
        self.skip -= 1;
        false
    }

    fn observe(&mut self, copied: bool) {
        if copied {
            self.penalty /= 2;
        } else {
            self.penalty = self.penalty.saturating_mul(2).clamp(1, MAX_SKIP);
            self.skip = self.penalty;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches tried out of `n` when every try ends as `copied` says.
    fn tries(guess: &mut Guess, n: usize, copied: bool) -> usize {
        (0..n)
            .filter(|_| {
                let tried = guess.worth_trying();
                if tried {
                    guess.observe(copied);
                }
                tried
            })
            .count()
    }

    #[test]
    fn new_keys_are_always_tried() {
        let mut guess = Guess::default();
        assert_eq!(tries(&mut guess, 100, true), 100);
    }

    #[test]
    fn updates_are_tried_ever_more_rarely_down_to_one_batch_in_sixty_five() {
        let mut guess = Guess::default();
        // Skips 1, 2, 4, … 64 after the tries: 8 tries cover 1 + 2 + … + 64 + 8 = 135 batches.
        assert_eq!(tries(&mut guess, 135, false), 8);
        assert_eq!(tries(&mut guess, 650, false), 10, "then one in 65");
    }

    #[test]
    fn a_topic_that_turns_to_new_keys_is_copied_again_soon() {
        let mut guess = Guess::default();
        tries(&mut guess, 1_000, false);
        assert!(tries(&mut guess, 65, true) >= 1);
        assert_eq!(tries(&mut guess, 100, true), 100);
    }

    #[test]
    fn one_failure_among_successes_costs_one_batch() {
        let mut guess = Guess::default();
        tries(&mut guess, 10, true);
        guess.observe(false);
        assert!(!guess.worth_trying());
        assert_eq!(tries(&mut guess, 10, true), 10);
    }
}
