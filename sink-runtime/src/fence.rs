//! Rebalances without stale writes, as Kafka Connect does them: before the group takes
//! partitions away, the writes in flight on them finish and commit, and nothing read of them
//! before the revocation is written afterwards.
//!
//! Revocations are numbered. A batch is taken with the number of the last revocation its task
//! had seen, so a partition revoked after that number is stale in it: its records were read
//! before the partition was given up, its new owner reads them again from the last commit,
//! and writing them late could overwrite that owner's newer rows. The rebalance callback
//! ([`Fence::revoke`]) marks the partitions, wakes writers retrying on them, and waits (bounded)
//! until no write holds them.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::warn;

type Partition = (String, i32);

#[derive(Default)]
struct State {
    /// Revocations so far.
    seq: u64,
    /// The number of the last revocation of each partition.
    revoked_at: HashMap<Partition, u64>,
    /// Writes in flight: their partitions, and the token that interrupts their retries.
    claims: HashMap<u64, (Vec<Partition>, CancellationToken)>,
    next_claim: u64,
}

#[derive(Default)]
pub struct Fence {
    state: Mutex<State>,
    released: Condvar,
}

impl Fence {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The number of the last revocation.
    pub fn seq(&self) -> u64 {
        self.lock().seq
    }

    /// Called by the rebalance callback before `partitions` are given up: later writes of what
    /// was read of them are dropped, retries on them are interrupted, and writes in flight on
    /// them may finish and commit for up to `limit`. Returns the revocation's number.
    pub fn revoke(&self, partitions: &[Partition], limit: Duration) -> u64 {
        let mut state = self.lock();
        state.seq += 1;
        let seq = state.seq;
        for p in partitions {
            state.revoked_at.insert(p.clone(), seq);
        }
        let holds = |state: &State| {
            state
                .claims
                .values()
                .filter(|(held, _)| held.iter().any(|p| partitions.contains(p)))
                .map(|(_, token)| token.clone())
                .collect::<Vec<_>>()
        };
        for token in holds(&state) {
            token.cancel();
        }
        let deadline = Instant::now() + limit;
        while !holds(&state).is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                warn!(
                    waited_s = limit.as_secs(),
                    "a write on revoked partitions is still in flight; giving them up anyway"
                );
                break;
            }
            state = self
                .released
                .wait_timeout(state, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        seq
    }

    /// Registers a write on `partitions`; dropping the claim releases them.
    pub fn claim(self: &Arc<Self>, partitions: Vec<Partition>) -> Claim {
        let token = CancellationToken::new();
        let mut state = self.lock();
        let id = state.next_claim;
        state.next_claim += 1;
        state.claims.insert(id, (partitions, token.clone()));
        Claim {
            fence: self.clone(),
            id,
            token,
        }
    }
}

/// A write in flight on some partitions.
pub struct Claim {
    fence: Arc<Fence>,
    id: u64,
    token: CancellationToken,
}

impl Claim {
    /// Cancelled when one of the claimed partitions is revoked.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Drops from the claim the partitions revoked since revocation `seen`, gives it a fresh
    /// token, and returns the partitions it still holds. One step under the fence's lock, so a
    /// revocation is either seen here or cancels the new token.
    pub fn narrow(&mut self, seen: u64) -> Vec<Partition> {
        let token = CancellationToken::new();
        let mut state = self.fence.lock();
        let revoked_at = std::mem::take(&mut state.revoked_at);
        let kept = match state.claims.get_mut(&self.id) {
            Some(claim) => {
                claim
                    .0
                    .retain(|p| revoked_at.get(p).is_none_or(|at| *at <= seen));
                claim.1 = token.clone();
                claim.0.clone()
            }
            None => Vec::new(),
        };
        state.revoked_at = revoked_at;
        drop(state);
        self.token = token;
        self.fence.released.notify_all();
        kept
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.fence.lock().claims.remove(&self.id);
        self.fence.released.notify_all();
    }
}

/// Runs `f`, which blocks on the fence, without stalling the tasks of this runtime worker.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        ("t".to_string(), n)
    }

    #[test]
    fn records_read_before_a_revocation_are_stale_after_it() {
        let fence = Arc::new(Fence::default());
        let seen = fence.seq();
        let mut claim = fence.claim(vec![p(0), p(1)]);
        assert_eq!(claim.narrow(seen), vec![p(0), p(1)]);
        let seq = fence.revoke(&[p(0)], Duration::ZERO);
        assert!(claim.token().is_cancelled());
        assert_eq!(
            claim.narrow(seen),
            vec![p(1)],
            "p0 was read before it was revoked"
        );
        assert!(!claim.token().is_cancelled(), "a fresh token");
        let mut later = fence.claim(vec![p(0)]);
        assert_eq!(later.narrow(seq), vec![p(0)], "read after the revocation");
    }

    #[test]
    fn a_revocation_waits_for_the_write_in_flight_and_interrupts_its_retries() {
        let fence = Arc::new(Fence::default());
        let claim = fence.claim(vec![p(0), p(1)]);
        let token = claim.token().clone();
        let writer = std::thread::spawn(move || {
            // The write notices the revocation, drops what it held, and releases.
            while !token.is_cancelled() {
                std::thread::yield_now();
            }
            drop(claim);
        });
        let started = Instant::now();
        fence.revoke(&[p(1)], Duration::from_secs(30));
        assert!(started.elapsed() < Duration::from_secs(30));
        writer.join().unwrap();
        assert!(fence.lock().claims.is_empty());
    }

    #[test]
    fn a_revocation_interrupts_and_waits_for_every_write_in_flight_on_it() {
        // A task writing two batches of one partition at once: each retry has its own token.
        let fence = Arc::new(Fence::default());
        let first = fence.claim(vec![p(0)]);
        let second = fence.claim(vec![p(0), p(1)]);
        let tokens = [first.token().clone(), second.token().clone()];
        let writers: Vec<_> = [first, second]
            .into_iter()
            .zip(tokens.clone())
            .map(|(claim, token)| {
                std::thread::spawn(move || {
                    while !token.is_cancelled() {
                        std::thread::yield_now();
                    }
                    drop(claim);
                })
            })
            .collect();
        fence.revoke(&[p(0)], Duration::from_secs(30));
        assert!(tokens.iter().all(CancellationToken::is_cancelled));
        assert!(
            fence.lock().claims.is_empty(),
            "both released before it returned"
        );
        for writer in writers {
            writer.join().unwrap();
        }
    }

    #[test]
    fn a_revocation_of_other_partitions_does_not_wait() {
        let fence = Arc::new(Fence::default());
        let claim = fence.claim(vec![p(0)]);
        fence.revoke(&[p(1)], Duration::from_secs(30));
        assert!(!claim.token().is_cancelled());
    }
}
