//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it: a candidate takes
//! the lease when it is free or when its holder has not renewed it for a lease duration *as observed locally*
//! (the time since this candidate last saw the record change, so clocks of different machines never compare);
//! every write carries the resourceVersion read, so two candidates never both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;

/// Lease timings (client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period).
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This candidate (the pod name).
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// How often candidates try and leaders renew.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// The defaults for `identity` on the Lease `namespace/name`.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// One candidate's view of the lease.
pub struct LeaseLock {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The holder and renew time last seen, and when this candidate saw them first.
    observed: Option<(String, Option<String>, Instant)>,
}

impl LeaseLock {
    /// A candidate using `client`.
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        LeaseLock { api: Api::namespaced(client, &config.namespace), config, observed: None }
    }

    /// The settings.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// Takes or renews the lease: true when this candidate holds it afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let secs = i32::try_from(self.config.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(current) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.config.name.clone()), ..Default::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let renewed = spec.renew_time.as_ref().map(|t| t.0.to_string());
        let seen = (holder.clone(), renewed.clone());
        let changed = self.observed.as_ref().is_none_or(|(h, r, _)| (h, r) != (&seen.0, &seen.1));
        if changed {
            self.observed = Some((seen.0, seen.1, Instant::now()));
        }
        let ours = holder == self.config.identity;
        let lasts =
            spec.lease_duration_seconds.map(|s| Duration::from_secs(s.max(0) as u64)).unwrap_or(self.config.duration);
        let expired = holder.is_empty() || self.observed.as_ref().is_some_and(|(_, _, since)| since.elapsed() > lasts);
        if !ours && !expired {
            return Ok(false);
        }
        let mut next = current.clone();
        let s = next.spec.get_or_insert_with(Default::default);
        if !ours {
            s.holder_identity = Some(self.config.identity.clone());
            s.acquire_time = Some(now.clone());
            s.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        s.lease_duration_seconds = Some(secs);
        s.renew_time = Some(now);
        // the resourceVersion read makes this a compare-and-swap: a concurrent taker gets 409
        match self.api.replace(&self.config.name, &PostParams::default(), &next).await {
            Ok(l) => {
                let s = l.spec.unwrap_or_default();
                self.observed = Some((
                    s.holder_identity.unwrap_or_default(),
                    s.renew_time.map(|t| t.0.to_string()),
                    Instant::now(),
                ));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (clears the holder) so a standby takes over at once instead of after a lease
    /// duration; only when this candidate holds it.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut current) = self.api.get_opt(&self.config.name).await? else { return Ok(()) };
        let Some(s) = current.spec.as_mut() else { return Ok(()) };
        if s.holder_identity.as_deref() != Some(&self.config.identity) {
            return Ok(());
        }
        s.holder_identity = None;
        s.renew_time = None;
        match self.api.replace(&self.config.name, &PostParams::default(), &current).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The current holder, if any.
    pub async fn holder(&self) -> Result<Option<String>, kube::Error> {
        Ok(self.api.get_opt(&self.config.name).await?.and_then(|l| l.spec?.holder_identity))
    }

    /// Waits until this candidate holds the lease.
    pub async fn acquire(&mut self) -> Result<(), kube::Error> {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                // an API server hiccup is not a reason to stop being a candidate
                Err(kube::Error::Api(s)) if s.code >= 500 => {}
                Err(e) => return Err(e),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews every retry period while it can; returns when the lease is lost (another holder, or no renewal
    /// succeeded within the renew deadline). The caller must stop leading then.
    pub async fn hold(&mut self) {
        let mut last = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last = Instant::now(),
                Ok(false) => return,
                Err(_) if last.elapsed() < self.config.renew_deadline => {}
                Err(_) => return,
            }
        }
    }
}
