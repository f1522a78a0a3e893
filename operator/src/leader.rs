//! Leader election through a coordination.k8s.io/v1 Lease, so two operator replicas never
//! reconcile at once. Writes use the Lease's resourceVersion: of two replicas racing for an
//! expired Lease, exactly one replace succeeds. As client-go does, a Lease is judged expired by
//! how long this replica has seen the same record, never by comparing the holder's renewTime
//! with the local clock (clocks differ between nodes). Every call is bounded, and a leader
//! that cannot renew stops before its Lease could have expired for the others.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (pod name plus process id).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub duration: Duration,
    pub renew_every: Duration,
}

impl LeaseSettings {
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        Self {
            namespace,
            name,
            identity,
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }
}

/// What to do with the Lease as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Create,
    Renew,
    /// Free or expired: take it over.
    TakeOver,
    /// Another replica holds it.
    Follow(String),
}

/// What to do, given the Lease and for how long this replica has seen that same record.
pub fn decide(lease: Option<&Lease>, me: &str, unchanged_for: Duration) -> Decision {
    let Some(spec) = lease.map(|l| l.spec.clone().unwrap_or_default()) else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.filter(|h| !h.is_empty());
    match holder {
        None => Decision::TakeOver,
        Some(holder) if holder == me => Decision::Renew,
        Some(holder) => {
            let duration = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15),
            );
            if unchanged_for > duration {
                Decision::TakeOver
            } else {
                Decision::Follow(holder)
            }
        }
    }
}

/// When this replica first saw a Lease record (its resourceVersion), for [`decide`].
#[derive(Debug, Default)]
pub struct Observed {
    record: Option<(String, Instant)>,
}

impl Observed {
    /// How long `lease` has stood unchanged, as seen from here.
    pub fn unchanged_for(&mut self, lease: Option<&Lease>, now: Instant) -> Duration {
        let version = lease
            .and_then(|l| l.metadata.resource_version.clone())
            .unwrap_or_default();
        match &self.record {
            Some((seen, since)) if *seen == version => now.saturating_duration_since(*since),
            _ => {
                self.record = Some((version, now));
                Duration::ZERO
            }
        }
    }
}

/// The Lease this replica writes for `decision` (not for `Follow`).
pub fn desired(
    current: Option<&Lease>,
    decision: &Decision,
    settings: &LeaseSettings,
    now: Timestamp,
) -> Lease {
    let previous = current.and_then(|l| l.spec.clone()).unwrap_or_default();
    let transitions = previous.lease_transitions.unwrap_or(0);
    let (acquired, transitions) = match decision {
        Decision::Renew => (previous.acquire_time.unwrap_or(MicroTime(now)), transitions),
        Decision::TakeOver => (MicroTime(now), transitions.saturating_add(1)),
        Decision::Create | Decision::Follow(_) => (MicroTime(now), transitions),
    };
    Lease {
        metadata: ObjectMeta {
            name: Some(settings.name.clone()),
            namespace: Some(settings.namespace.clone()),
            resource_version: current.and_then(|l| l.metadata.resource_version.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(settings.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(settings.duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquired),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }),
    }
}

pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observed: std::sync::Mutex<Observed>,
}

/// Lease calls have no timeout of their own (kube's read timeout is none): a hung call must
/// not keep a leader that can no longer renew acting.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("the API server did not answer within {0:?}")]
    Timeout(Duration),
}

impl Elector {
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: std::sync::Mutex::default(),
        }
    }

    /// A call to the API server, bounded by the renew period.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, LeaseError> {
        let limit = self.settings.renew_every;
        match tokio::time::timeout(limit, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(LeaseError::Timeout(limit)),
        }
    }

    /// One round: acquire or renew if possible. Ok(true) while this replica leads.
    pub async fn try_lead(&self) -> Result<bool, LeaseError> {
        let current = self.bounded(self.api.get_opt(&self.settings.name)).await?;
        let unchanged_for = self
            .observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unchanged_for(current.as_ref(), Instant::now());
        let decision = decide(current.as_ref(), &self.settings.identity, unchanged_for);
        let lease = desired(
            current.as_ref(),
            &decision,
            &self.settings,
            Timestamp::now(),
        );
        let written = match decision {
            Decision::Follow(_) => return Ok(false),
            Decision::Create => {
                self.bounded(self.api.create(&PostParams::default(), &lease))
                    .await
            }
            Decision::Renew | Decision::TakeOver => {
                self.bounded(
                    self.api
                        .replace(&self.settings.name, &PostParams::default(), &lease),
                )
                .await
            }
        };
        match written {
            Ok(_) => Ok(true),
            // Someone else wrote first.
            Err(LeaseError::Kube(kube::Error::Api(s)))
                if s.is_conflict() || s.is_already_exists() =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica leads; false when `stop` comes first.
    pub async fn acquire(&self, stop: &mut watch::Receiver<bool>) -> bool {
        loop {
            match self.try_lead().await {
                Ok(true) => {
                    tracing::info!(identity = %self.settings.identity, "acquired the lease");
                    return true;
                }
                Ok(false) => tracing::debug!("another replica leads"),
                Err(e) => tracing::warn!(error = %e, "cannot read or write the lease"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.renew_every) => {}
                _ = stop.wait_for(|stopped| *stopped) => return false,
            }
        }
    }

    /// Renews the Lease until it is lost: taken by another replica, or not renewed in time.
    /// Returns before the last successful renewal is a lease duration old (a renew period
    /// early), even while a call hangs: another replica may take over only after a whole
    /// duration of seeing the record unchanged, so two leaders never overlap.
    pub async fn hold(&self) {
        let mut renewed = Instant::now();
        loop {
            let deadline = renewed + self.settings.duration - self.settings.renew_every;
            let next = (Instant::now() + self.settings.renew_every).min(deadline);
            tokio::time::sleep_until(next.into()).await;
            if Instant::now() >= deadline {
                return;
            }
            let round = tokio::time::timeout_at(deadline.into(), self.try_lead()).await;
            match round {
                Ok(Ok(true)) => renewed = Instant::now(),
                Ok(Ok(false)) => return,
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the lease"),
                Err(_) => return,
            }
        }
    }

    /// Gives the Lease up so a standby replica takes over at once instead of after expiry.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.bounded(self.api.get_opt(&self.settings.name)).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(e) = self
            .bounded(
                self.api
                    .replace(&self.settings.name, &PostParams::default(), &lease),
            )
            .await
        {
            tracing::warn!(error = %e, "cannot release the lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("ts")
    }

    fn held_by(holder: &str, renewed: i64) -> Lease {
        let settings = LeaseSettings::new("ns".into(), "l".into(), holder.into());
        desired(None, &Decision::Create, &settings, at(renewed))
    }

    #[test]
    fn creates_renews_follows_and_takes_over_when_expired() {
        let secs = Duration::from_secs;
        assert_eq!(decide(None, "me", secs(0)), Decision::Create);
        assert_eq!(
            decide(Some(&held_by("me", 100)), "me", secs(5)),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&held_by("other", 100)), "me", secs(10)),
            Decision::Follow("other".into())
        );
        assert_eq!(
            decide(Some(&held_by("other", 100)), "me", secs(16)),
            Decision::TakeOver
        );
        let mut released = held_by("other", 100);
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
        }
        assert_eq!(decide(Some(&released), "me", secs(0)), Decision::TakeOver);
    }

    #[test]
    fn expiry_is_judged_by_how_long_this_replica_saw_the_same_record() {
        // A holder whose clock runs far behind writes renewTimes long past: it still leads
        // while it keeps writing new records.
        let mut observed = Observed::default();
        let start = Instant::now();
        let mut lease = held_by("other", 0);
        lease.metadata.resource_version = Some("1".into());
        assert_eq!(observed.unchanged_for(Some(&lease), start), Duration::ZERO);
        let later = start + Duration::from_secs(10);
        assert_eq!(
            observed.unchanged_for(Some(&lease), later),
            Duration::from_secs(10)
        );
        lease.metadata.resource_version = Some("2".into());
        assert_eq!(observed.unchanged_for(Some(&lease), later), Duration::ZERO);
        assert_eq!(
            decide(Some(&lease), "me", Duration::ZERO),
            Decision::Follow("other".into())
        );
    }

    #[test]
    fn take_over_counts_a_transition_and_renew_keeps_the_acquire_time() {
        let settings = LeaseSettings::new("ns".into(), "l".into(), "me".into());
        let mut old = held_by("other", 100);
        old.metadata.resource_version = Some("7".into());
        let taken = desired(Some(&old), &Decision::TakeOver, &settings, at(200));
        let spec = taken.spec.clone().expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(1));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(taken.metadata.resource_version.as_deref(), Some("7"));
        let renewed = desired(Some(&taken), &Decision::Renew, &settings, at(205));
        let renewed = renewed.spec.expect("spec");
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(200))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(205))));
        assert_eq!(renewed.lease_transitions, Some(1));
    }
}
