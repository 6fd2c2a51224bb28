//! Kubernetes API calls under the [`crate::retry`] policy (feature `kube`): 429s (with their `Retry-After`), 5xx
//! and lost connections are retried per call; everything else (409 conflicts, 404, validation) goes back to
//! the caller, which re-reads and re-merges where its operation is a merge.
//!
//! Every Kubernetes write eksodus makes is idempotent when repeated (server-side apply, a create that answers
//! `AlreadyExists`, an update carrying a `resourceVersion` that answers `Conflict`), so calls are retried as
//! [`Idempotency::Idempotent`].

use std::future::Future;
use std::time::Duration;

use crate::retry::{self, Failure, Idempotency, Policy, Verdict};

/// The retry policy of Kubernetes calls: two minutes per call, backoffs from 100 ms (250 ms when throttled) up
/// to 5 s; the API server's `Retry-After` wins when longer.
pub fn policy() -> Policy {
    Policy {
        budget: Duration::from_secs(120),
        base_delay: Duration::from_millis(100),
        throttle_base_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(5),
    }
}

/// What a kube-rs error says about the request.
pub fn verdict(e: &kube::Error) -> Verdict {
    match e {
        kube::Error::Api(s) => {
            let retry_after = s
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(u64::from(s)));
            match s.code {
                429 => Verdict::Throttled { retry_after },
                500 | 502 | 503 | 504 => Verdict::Transient { retry_after },
                _ if matches!(s.reason.as_str(), "ServerTimeout" | "Timeout" | "TooManyRequests") => {
                    Verdict::Transient { retry_after }
                }
                _ => Verdict::Final,
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            Verdict::Transient { retry_after: None }
        }
        _ => Verdict::Final,
    }
}

/// Runs one Kubernetes call under [`policy`].
pub async fn call<T, F, Fut>(f: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    call_with(&policy(), f).await.map_err(|f| f.error)
}

/// Runs one Kubernetes call under `policy`, returning the whole [`Failure`] (attempts, time) when it fails.
pub async fn call_with<T, F, Fut>(policy: &Policy, f: F) -> Result<T, Failure<kube::Error>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    retry::run(policy, None, Idempotency::Idempotent, verdict, f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str, retry: i32) -> kube::Error {
        let mut s = kube::core::Status::failure("x", reason).with_code(code);
        if retry > 0 {
            let details = serde_json::from_value(serde_json::json!({"retryAfterSeconds": retry})).expect("details");
            s = s.with_details(details);
        }
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(
            verdict(&api(429, "TooManyRequests", 2)),
            Verdict::Throttled { retry_after: Some(Duration::from_secs(2)) }
        );
        assert_eq!(verdict(&api(503, "ServiceUnavailable", 0)), Verdict::Transient { retry_after: None });
        assert_eq!(verdict(&api(409, "Conflict", 0)), Verdict::Final);
        assert_eq!(verdict(&api(404, "NotFound", 0)), Verdict::Final);
        assert_eq!(verdict(&api(422, "Invalid", 0)), Verdict::Final);
    }
}
