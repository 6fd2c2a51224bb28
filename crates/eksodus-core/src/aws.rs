//! AWS client configuration, error classification and the per-call retry of every AWS call (feature `aws`).
//!
//! The SDK's own retries are **disabled** ([`AwsTarget::load`], [`without_sdk_retries`]): every call goes
//! through [`Calls`] instead, which retries it on its own under [`crate::retry`]'s policy and knows what the SDK
//! cannot: a create whose response was lost may have created its resource, so it is not sent again blindly
//! (a second `CreateVpc` makes a second VPC); it goes back to its operation, which looks the resource up by its
//! tags first.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use std::sync::Arc;

use aws_types::request_id::RequestId;

use crate::engine::{ErrorClass, StepError};
use crate::retry::{self, Idempotency, Policy, RateLimiter, Verdict};

/// Where AWS calls go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsTarget {
    /// Region (falls back to the environment spec's).
    pub region: String,
    /// Endpoint override (the local emulator); `AWS_ENDPOINT_URL` is honoured by the default chain anyway.
    pub endpoint_url: Option<String>,
    /// Named profile from the shared config files.
    pub profile: Option<String>,
    /// Fixed credentials (the local emulator takes any).
    pub static_credentials: Option<(String, String)>,
}

impl AwsTarget {
    /// A target for the local emulator at `endpoint`.
    pub fn local(region: &str, endpoint: &str) -> Self {
        AwsTarget {
            region: region.to_string(),
            endpoint_url: Some(endpoint.to_string()),
            profile: None,
            static_credentials: Some(("testing".into(), "testing".into())),
        }
    }

    /// Loads the SDK configuration: the standard chain (environment, profiles, SSO, IMDS) unless overridden,
    /// with SDK retries off and bounded timeouts.
    pub async fn load(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(p) = &self.profile {
            loader = loader.profile_name(p);
        }
        if let Some((id, secret)) = &self.static_credentials {
            loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "eksodus-static"));
        }
        loader.load().await
    }
}

/// `conf` with the SDK's own retries turned off (and bounded timeouts): what [`Calls`] needs to be the only
/// one retrying. Every client eksodus makes is built from such a config, whatever config an embedder hands in.
pub fn without_sdk_retries(conf: &SdkConfig) -> SdkConfig {
    let timeouts = conf.timeout_config().cloned().unwrap_or_else(|| {
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(60))
            .build()
    });
    conf.to_builder().retry_config(RetryConfig::disabled()).timeout_config(timeouts).build()
}

/// The retrying caller of one AWS service: every call through it is retried on its own ([`crate::retry::run`])
/// and paced by the process's [`RateLimiter`] for the service, region and endpoint.
#[derive(Debug, Clone)]
pub struct Calls {
    service: &'static str,
    limiter: Arc<RateLimiter>,
    policy: Policy,
}

impl Calls {
    /// The caller of `service` (`ec2`, `iam`, ...) for clients made from `conf`.
    pub fn new(service: &'static str, conf: &SdkConfig) -> Calls {
        let region = conf.region().map(|r| r.to_string()).unwrap_or_default();
        let endpoint = conf.endpoint_url().unwrap_or("aws");
        Calls { service, limiter: retry::limiter(&format!("{service}/{region}/{endpoint}")), policy: Policy::default() }
    }

    /// The caller of `service` in `region` at AWS's own endpoints (when only a client is at hand).
    pub fn for_region(service: &'static str, region: &str) -> Calls {
        Calls { service, limiter: retry::limiter(&format!("{service}/{region}/aws")), policy: Policy::default() }
    }

    /// The caller of `service` whose rate limiter is shared by the callers made with the same `partition`.
    pub fn keyed(service: &'static str, partition: &str) -> Calls {
        Calls { service, limiter: retry::limiter(&format!("{service}/{partition}")), policy: Policy::default() }
    }

    /// Uses `policy` (budget and backoffs).
    pub fn with_policy(mut self, policy: Policy) -> Calls {
        self.policy = policy;
        self
    }

    /// The retry policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The service's shared rate limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// One call that may be sent again after a transient failure: a read, or a write whose repetition changes
    /// nothing (delete, tag, modify, put, attach). Returns the last error once the budget is spent.
    pub async fn read<T, E, F, Fut>(&self, call: F) -> Result<T, SdkError<E, HttpResponse>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata,
    {
        self.run(Idempotency::Idempotent, call).await
    }

    /// One write whose repetition could duplicate what it made (a create): throttling is waited out, but a
    /// transient failure is returned at once, since the write may have happened.
    pub async fn create<T, E, F, Fut>(&self, call: F) -> Result<T, SdkError<E, HttpResponse>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata,
    {
        self.run(Idempotency::NotIdempotent, call).await
    }

    /// One call with the given idempotency.
    pub async fn run<T, E, F, Fut>(&self, idem: Idempotency, call: F) -> Result<T, SdkError<E, HttpResponse>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata,
    {
        // boxed: an SDK call's future is many kilobytes, and an operation making a dozen calls would otherwise
        // hold each one in its own state and, in debug builds, in its poll frame on the stack
        Box::pin(retry::run(&self.policy, Some(&self.limiter), idem, verdict, call)).await.map_err(|f| f.error)
    }

    /// [`Calls::read`], its error a [`StepError`] naming `what`.
    pub async fn read_step<T, E, F, Fut>(&self, what: impl std::fmt::Display, call: F) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.read(call).await.map_err(|e| step_error(what, e))
    }

    /// [`Calls::create`], its error a [`StepError`] naming `what`.
    pub async fn create_step<T, E, F, Fut>(&self, what: impl std::fmt::Display, call: F) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.create(call).await.map_err(|e| step_error(what, e))
    }

    /// The service this caller calls.
    pub fn service(&self) -> &'static str {
        self.service
    }
}

/// What an SDK error says about the request ([`crate::retry::Verdict`]).
pub fn verdict<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Verdict {
    match err {
        SdkError::ServiceError(se) => {
            let headers = se.raw().headers();
            // `Retry-After` in seconds, or AWS's `x-amz-retry-after` in milliseconds
            let retry_after =
                headers.get("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs).or_else(
                    || {
                        headers
                            .get("x-amz-retry-after")
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_millis)
                    },
                );
            match classify_code(se.err().code(), Some(se.raw().status().as_u16())) {
                ErrorClass::Throttling => Verdict::Throttled { retry_after },
                ErrorClass::Transient => Verdict::Transient { retry_after },
                ErrorClass::Permanent => Verdict::Final,
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Verdict::Transient { retry_after: None }
        }
        _ => Verdict::Final,
    }
}

/// Error codes AWS services use to say "slow down".
pub const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "BandwidthLimitExceeded",
];

/// Error codes of server-side trouble worth retrying.
pub const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServerException",
    "ServiceException",
    "RequestTimeout",
    "RequestTimeoutException",
    "Unavailable",
];

/// Classifies an error code (and HTTP status, when known) for the retry loop.
pub fn classify_code(code: Option<&str>, status: Option<u16>) -> ErrorClass {
    match code {
        Some(c) if THROTTLING_CODES.contains(&c) => ErrorClass::Throttling,
        Some(c) if TRANSIENT_CODES.contains(&c) => ErrorClass::Transient,
        _ if status == Some(429) => ErrorClass::Throttling,
        _ if status.is_some_and(|s| s >= 500) => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// The service error code of an SDK error, if it carries one.
pub fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// Turns an SDK error into a classified [`StepError`]; `what` says which call on which resource.
pub fn step_error<E>(what: impl std::fmt::Display, err: SdkError<E, HttpResponse>) -> StepError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (class, code, detail) = match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().map(str::to_string);
            let status = se.raw().status().as_u16();
            let msg = se.err().message().unwrap_or("").to_string();
            let class = classify_code(code.as_deref(), Some(status));
            let mut detail = match &code {
                Some(c) => format!("{c}: {msg}"),
                None => format!("HTTP {status} {msg}"),
            };
            if let Some(id) = err.request_id() {
                detail.push_str(&format!(" (request ID {id})"));
            }
            (class, code, detail)
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            (ErrorClass::Transient, None, DisplayErrorContext(&err).to_string())
        }
        _ => (ErrorClass::Permanent, None, DisplayErrorContext(&err).to_string()),
    };
    let request_id = err.request_id().map(str::to_string);
    StepError { class, code, request_id, message: format!("{what}: {detail}"), source: Some(Box::new(err)) }
}

/// How one call inside an operation turns its outcome into the step's (see [`op_call`]).
pub type Judge<T, U, E> = fn(String, Result<T, SdkError<E, HttpResponse>>) -> Result<U, StepError>;

/// One call inside an operation, made through `calls` and retried on its own with `policy`: a throttled or
/// failed call late in a multi-call operation must not throw away the calls before it. `judge` turns its
/// outcome into the step's (an "already gone" that counts as done, an eventual-consistency answer that is
/// transient). Every reconciler's operations use this one helper.
pub async fn op_call<T, U, E, F, Fut>(
    policy: &crate::engine::ApplyOptions,
    calls: &Calls,
    what: String,
    call: F,
    judge: Judge<T, U, E>,
) -> Result<U, StepError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let call = &call;
    crate::engine::retry(policy, || {
        let what = what.clone();
        async move { judge(what, calls.read(call).await) }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert_eq!(classify_code(Some("RequestLimitExceeded"), Some(503)), ErrorClass::Throttling);
        assert_eq!(classify_code(Some("Throttling"), Some(400)), ErrorClass::Throttling);
        assert_eq!(classify_code(Some("InternalError"), Some(500)), ErrorClass::Transient);
        assert_eq!(classify_code(None, Some(502)), ErrorClass::Transient);
        assert_eq!(classify_code(None, Some(429)), ErrorClass::Throttling);
        assert_eq!(classify_code(Some("InvalidVpcID.NotFound"), Some(400)), ErrorClass::Permanent);
    }
}
