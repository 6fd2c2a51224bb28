//! One retry policy for every remote call eksodus makes, AWS or Kubernetes: each call is retried on its own
//! (never a whole multi-call operation), classified by what its failure says about the request, with
//! exponential backoff and full jitter, `Retry-After` honoured, and a budget in *time*: a throttled call keeps
//! trying for [`Policy::budget`] (a few minutes by default, as the AWS CLI, eksctl and Terraform do), then
//! gives up with its last error and how long it tried.
//!
//! What may be sent again depends on the failure and on the call:
//! - [`Verdict::Throttled`]: the service refused the request before acting on it. Always safe to resend,
//!   after slowing down; the call's [`RateLimiter`] also slows every other call to the same service.
//! - [`Verdict::Transient`]: a 5xx, a reset connection, a timeout. The request may or may not have been acted
//!   on: reads and idempotent writes are resent; a write that is not idempotent (a create) comes back as
//!   [`Failure::ambiguous`], for its operation to look the resource up before creating it again.
//! - [`Verdict::Final`]: validation, not found, conflict: the caller's business, returned at once.
//!
//! The [`RateLimiter`] is a client-side token bucket per service and region (see [`limiter`]), shared by every
//! call of the process, so fifty concurrent operations, or fifty environments in one operator, slow down
//! together instead of throttling each other into failure: its rate falls by a factor when throttling is
//! congestion (a large share of the recent answers, not the odd throttle any busy account sees; at most once
//! per cool-down, so one burst counts once) and grows back additively with successes (AIMD), and it is
//! unlimited until congestion is first seen.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::Rng;

/// What a failure says about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Refused before being acted on (throttling, HTTP 429): resend after slowing down.
    Throttled {
        /// The service's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// May or may not have been acted on (5xx, connection reset, timeout).
    Transient {
        /// The service's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// Retrying will not help; the caller decides.
    Final,
}

/// Whether a call may be sent again after a [`Verdict::Transient`] failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// A read, or a write whose repetition changes nothing (delete, tag, put, apply).
    Idempotent,
    /// A write whose repetition could duplicate what it made (a create without a token the service honours).
    NotIdempotent,
}

/// Retry settings of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long one call keeps trying before it gives up.
    pub budget: Duration,
    /// First backoff after a transient failure (doubled each time, full jitter).
    pub base_delay: Duration,
    /// First backoff after throttling.
    pub throttle_base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
}

impl Default for Policy {
    /// Five minutes per call, backoffs from 100 ms (150 ms when throttled) up to 20 s. The first backoffs are
    /// short on purpose: a single throttle is answered by a short jittered wait (they double with every repeat),
    /// and sustained throttling, which is congestion, by the shared [`RateLimiter`] slowing every call down
    /// (`cargo xtask bench faults`: at 20% of calls throttled, `up` takes 1.3x its fault-free time).
    fn default() -> Self {
        Policy {
            budget: Duration::from_secs(300),
            base_delay: Duration::from_millis(100),
            throttle_base_delay: Duration::from_millis(150),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl Policy {
    /// Short delays for the local emulator and tests; the same two-minute patience for a loaded machine.
    pub fn fast() -> Self {
        Policy {
            budget: Duration::from_secs(120),
            base_delay: Duration::from_millis(5),
            throttle_base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(250),
        }
    }

    /// The backoff before attempt `attempt + 1`: exponential, capped, full jitter (uniform in `[0, cap]`), and
    /// never shorter than the service's `Retry-After`.
    pub fn backoff(&self, verdict: Verdict, attempt: u32) -> Duration {
        let (base, after) = match verdict {
            Verdict::Throttled { retry_after } => (self.throttle_base_delay, retry_after),
            Verdict::Transient { retry_after } => (self.base_delay, retry_after),
            Verdict::Final => return Duration::ZERO,
        };
        let cap = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(self.max_delay);
        let jittered = Duration::from_micros(rand::thread_rng().gen_range(0..=cap.as_micros() as u64));
        match after {
            Some(a) => jittered.max(a.min(self.budget)),
            None => jittered,
        }
    }
}

/// A call that did not succeed.
#[derive(Debug)]
pub struct Failure<E> {
    /// The last error.
    pub error: E,
    /// Its verdict.
    pub verdict: Verdict,
    /// Attempts made.
    pub attempts: u32,
    /// Time spent, backoffs included.
    pub elapsed: Duration,
    /// A non-idempotent write failed transiently: it may have been acted on.
    pub ambiguous: bool,
}

impl<E> Failure<E> {
    /// Whether the call gave up only because its budget ran out.
    pub fn out_of_budget(&self) -> bool {
        !self.ambiguous && self.verdict != Verdict::Final
    }

    /// "after N attempts in T s", for messages (empty for a first-attempt failure).
    pub fn tried(&self) -> String {
        if self.attempts <= 1 {
            String::new()
        } else {
            format!(" (after {} attempts in {:.1}s)", self.attempts, self.elapsed.as_secs_f64())
        }
    }
}

/// Runs `call` until it succeeds, fails for good, or the policy's budget is spent. `classify` reads each error;
/// `limiter` (when given) paces every attempt and learns from throttling.
pub async fn run<T, E, F, Fut>(
    policy: &Policy,
    limiter: Option<&RateLimiter>,
    idempotency: Idempotency,
    classify: impl Fn(&E) -> Verdict,
    mut call: F,
) -> Result<T, Failure<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Some(l) = limiter {
            l.acquire().await;
        }
        let result = call().await;
        let error = match result {
            Ok(v) => {
                if let Some(l) = limiter {
                    l.on_success();
                }
                return Ok(v);
            }
            Err(e) => e,
        };
        let verdict = classify(&error);
        let fail = |ambiguous| Failure { error, verdict, attempts: attempt, elapsed: start.elapsed(), ambiguous };
        match verdict {
            Verdict::Final => return Err(fail(false)),
            Verdict::Throttled { .. } => {
                if let Some(l) = limiter {
                    l.on_throttle();
                }
            }
            Verdict::Transient { .. } if idempotency == Idempotency::NotIdempotent => return Err(fail(true)),
            Verdict::Transient { .. } => {}
        }
        let delay = policy.backoff(verdict, attempt);
        if start.elapsed() + delay > policy.budget {
            return Err(fail(false));
        }
        tokio::time::sleep(delay).await;
    }
}

/// A client-side token bucket whose rate adapts: unlimited until the first throttle, then multiplied by
/// [`RateLimiter::DECREASE`] on throttling (at most once per [`RateLimiter::COOL_DOWN`]) and raised by
/// [`RateLimiter::INCREASE`] requests per second per success, back to unlimited at [`RateLimiter::MAX_RATE`].
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Requests per second; `None` while unlimited.
    rate: Option<f64>,
    /// Tokens available (negative: reserved by waiting callers).
    tokens: f64,
    last_refill: Instant,
    last_decrease: Option<Instant>,
    /// Send times of the last second, to know the rate that met the first throttle.
    recent: std::collections::VecDeque<Instant>,
    /// The last answers: `true` for a throttle.
    outcomes: std::collections::VecDeque<bool>,
    throttles: u64,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            state: Mutex::new(Bucket {
                rate: None,
                tokens: 0.0,
                last_refill: Instant::now(),
                last_decrease: None,
                recent: Default::default(),
                outcomes: Default::default(),
                throttles: 0,
            }),
        }
    }
}

impl RateLimiter {
    /// Factor applied to the rate on throttling.
    pub const DECREASE: f64 = 0.7;
    /// Requests per second added per success.
    pub const INCREASE: f64 = 0.5;
    /// Throttles within this long of a decrease count as the same congestion.
    pub const COOL_DOWN: Duration = Duration::from_millis(500);
    /// The slowest the bucket gets.
    pub const MIN_RATE: f64 = 2.0;
    /// At this rate the bucket lets go again.
    pub const MAX_RATE: f64 = 200.0;
    /// Burst size once limited.
    const BURST: f64 = 5.0;
    /// How many recent answers the congestion share is taken over.
    pub const WINDOW: usize = 40;
    /// The share of throttles among the recent answers that counts as congestion.
    pub const CONGESTION: f64 = 0.3;

    fn remember(b: &mut Bucket, throttled: bool) {
        b.outcomes.push_back(throttled);
        if b.outcomes.len() > Self::WINDOW {
            b.outcomes.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = {
            let mut b = self.lock();
            let now = Instant::now();
            b.recent.push_back(now);
            while b.recent.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1)) {
                b.recent.pop_front();
            }
            let Some(rate) = b.rate else { return };
            let elapsed = now.duration_since(b.last_refill).as_secs_f64();
            b.tokens = (b.tokens + elapsed * rate).min(Self::BURST);
            b.last_refill = now;
            b.tokens -= 1.0;
            if b.tokens >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-b.tokens / rate)
        };
        tokio::time::sleep(wait).await;
    }

    /// The service throttled a call.
    pub fn on_throttle(&self) {
        let mut b = self.lock();
        b.throttles += 1;
        Self::remember(&mut b, true);
        let now = Instant::now();
        if b.last_decrease.is_some_and(|t| now.duration_since(t) < Self::COOL_DOWN) {
            return;
        }
        let share = b.outcomes.iter().filter(|t| **t).count() as f64 / b.outcomes.len().max(1) as f64;
        if b.outcomes.len() < 10 || share < Self::CONGESTION {
            return; // the odd throttle: the call's own backoff is enough
        }
        let current = b.rate.unwrap_or_else(|| (b.recent.len() as f64).max(Self::MIN_RATE * 2.0));
        b.rate = Some((current * Self::DECREASE).max(Self::MIN_RATE));
        b.tokens = b.tokens.min(0.0);
        b.last_refill = now;
        b.last_decrease = Some(now);
    }

    /// A call succeeded.
    pub fn on_success(&self) {
        let mut b = self.lock();
        Self::remember(&mut b, false);
        if let Some(r) = b.rate {
            let next = r + Self::INCREASE;
            b.rate = (next < Self::MAX_RATE).then_some(next);
        }
    }

    /// The current rate (requests per second), `None` while unlimited.
    pub fn rate(&self) -> Option<f64> {
        self.lock().rate
    }

    /// Throttles seen so far.
    pub fn throttles(&self) -> u64 {
        self.lock().throttles
    }
}

/// The process's limiter for `key` (service, region and endpoint, as the caller forms it): every client of the
/// same service in the same place shares one.
pub fn limiter(key: &str) -> Arc<RateLimiter> {
    static ALL: OnceLock<Mutex<HashMap<String, Arc<RateLimiter>>>> = OnceLock::new();
    let mut all = ALL.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    all.entry(key.to_string()).or_default().clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, PartialEq)]
    enum E {
        Slow,
        Flaky,
        Bad,
    }

    fn classify(e: &E) -> Verdict {
        match e {
            E::Slow => Verdict::Throttled { retry_after: None },
            E::Flaky => Verdict::Transient { retry_after: None },
            E::Bad => Verdict::Final,
        }
    }

    async fn failing(n: u32, e: fn() -> E, idem: Idempotency, policy: Policy) -> (Result<u32, Failure<E>>, u32) {
        let calls = AtomicU32::new(0);
        let r = run(&policy, None, idem, classify, || async {
            let c = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if c <= n {
                Err(e())
            } else {
                Ok(c)
            }
        })
        .await;
        (r, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn each_class_is_handled_as_it_should() {
        // a long streak of throttling is waited out: the budget is time, not attempts
        let (r, calls) = failing(40, || E::Slow, Idempotency::NotIdempotent, Policy::fast()).await;
        assert_eq!((r.unwrap(), calls), (41, 41));
        let (r, calls) = failing(5, || E::Flaky, Idempotency::Idempotent, Policy::fast()).await;
        assert_eq!((r.unwrap(), calls), (6, 6));
        // a create that may have happened goes back to its operation at once
        let (r, calls) = failing(5, || E::Flaky, Idempotency::NotIdempotent, Policy::fast()).await;
        let f = r.unwrap_err();
        assert!(f.ambiguous && !f.out_of_budget() && calls == 1);
        let (r, calls) = failing(5, || E::Bad, Idempotency::Idempotent, Policy::fast()).await;
        assert!(matches!(r, Err(Failure { error: E::Bad, ambiguous: false, .. })) && calls == 1);
    }

    #[tokio::test]
    async fn the_budget_ends_the_wait_with_the_last_error_and_the_time_spent() {
        let policy = Policy { budget: Duration::from_millis(200), ..Policy::fast() };
        let start = Instant::now();
        let (r, calls) = failing(u32::MAX, || E::Slow, Idempotency::Idempotent, policy).await;
        let f = r.unwrap_err();
        assert!(f.out_of_budget() && f.error == E::Slow && calls > 3);
        assert!(start.elapsed() < Duration::from_millis(600), "{:?}", start.elapsed());
        assert!(f.tried().contains("attempts in"), "{}", f.tried());
    }

    #[test]
    fn backoff_is_capped_jittered_and_honours_retry_after() {
        let p = Policy::default();
        for attempt in 1..40 {
            let d = p.backoff(Verdict::Transient { retry_after: None }, attempt);
            assert!(d <= p.max_delay);
        }
        let d = p.backoff(Verdict::Throttled { retry_after: Some(Duration::from_secs(3)) }, 1);
        assert!(d >= Duration::from_secs(3));
        // full jitter: over many draws, short and long waits both occur (attempt 6: up to 3.2 s)
        let draws: Vec<Duration> = (0..200).map(|_| p.backoff(Verdict::Transient { retry_after: None }, 6)).collect();
        assert!(draws.iter().any(|d| *d < Duration::from_millis(800)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(2400)));
    }

    #[tokio::test]
    async fn the_limiter_slows_down_on_throttling_and_recovers() {
        let l = RateLimiter::default();
        assert_eq!(l.rate(), None);
        for _ in 0..20 {
            l.acquire().await;
        }
        // the odd throttle among successes is not congestion
        for _ in 0..20 {
            l.on_success();
        }
        l.on_throttle();
        assert_eq!(l.rate(), None);
        // a third of the answers throttled is
        for _ in 0..20 {
            l.on_throttle();
            l.on_success();
        }
        let first = l.rate().unwrap();
        l.on_throttle(); // same burst: counted once
        assert_eq!(l.rate(), Some(first));
        assert!(first >= RateLimiter::MIN_RATE);
        // paced: 12 acquisitions at a limited rate take time
        let start = Instant::now();
        for _ in 0..12 {
            l.acquire().await;
        }
        assert!(start.elapsed() >= Duration::from_secs_f64(6.0 / first), "{:?} at {first}/s", start.elapsed());
        for _ in 0..1000 {
            l.on_success();
        }
        assert_eq!(l.rate(), None, "enough successes lift the limit");
        assert_eq!(l.throttles(), 22);
    }

    #[test]
    fn limiters_are_shared_by_key() {
        let a = limiter("ec2/us-east-1/test-shared");
        let b = limiter("ec2/us-east-1/test-shared");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &limiter("iam/us-east-1/test-shared")));
    }
}
