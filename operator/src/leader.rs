//! Leader election through a coordination.k8s.io/v1 Lease, so two operator replicas never
//! reconcile at once. Writes use the Lease's resourceVersion: of two replicas racing for an
//! expired Lease, exactly one replace succeeds.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
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

pub fn decide(lease: Option<&Lease>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease.map(|l| l.spec.clone().unwrap_or_default()) else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.filter(|h| !h.is_empty());
    match holder {
        None => Decision::TakeOver,
        Some(holder) if holder == me => Decision::Renew,
        Some(holder) => {
            let duration =
                SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
            let renewed = spec.renew_time.or(spec.acquire_time).map(|t| t.0);
            if renewed.is_none_or(|t| t + duration < now) {
                Decision::TakeOver
            } else {
                Decision::Follow(holder)
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
}

impl Elector {
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
        }
    }

    /// One round: acquire or renew if possible. Ok(true) while this replica leads.
    pub async fn try_lead(&self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.settings.name).await?;
        let now = Timestamp::now();
        let decision = decide(current.as_ref(), &self.settings.identity, now);
        let lease = desired(current.as_ref(), &decision, &self.settings, now);
        let written = match decision {
            Decision::Follow(_) => return Ok(false),
            Decision::Create => self.api.create(&PostParams::default(), &lease).await,
            Decision::Renew | Decision::TakeOver => {
                self.api
                    .replace(&self.settings.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(_) => Ok(true),
            // Someone else wrote first.
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => Ok(false),
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

    /// Renews the Lease until it is lost: taken by another replica, or not renewed for a whole
    /// lease duration (after which another replica may already have taken it).
    pub async fn hold(&self) {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.settings.renew_every).await;
            match self.try_lead().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "cannot renew the lease"),
            }
            // Stop early enough that two leaders never overlap.
            if renewed.elapsed() + self.settings.renew_every >= self.settings.duration {
                return;
            }
        }
    }

    /// Gives the Lease up so a standby replica takes over at once instead of after expiry.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await else {
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
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
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
        assert_eq!(decide(None, "me", at(0)), Decision::Create);
        assert_eq!(
            decide(Some(&held_by("me", 100)), "me", at(105)),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&held_by("other", 100)), "me", at(110)),
            Decision::Follow("other".into())
        );
        assert_eq!(
            decide(Some(&held_by("other", 100)), "me", at(116)),
            Decision::TakeOver
        );
        let mut released = held_by("other", 100);
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
        }
        assert_eq!(decide(Some(&released), "me", at(101)), Decision::TakeOver);
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
