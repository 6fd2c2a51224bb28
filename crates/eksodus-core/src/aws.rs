//! AWS client configuration and error classification, shared by every reconciler (feature `aws`).
//!
//! The SDK's own retries are **disabled**: the engine retries instead, because only it knows whether a retry
//! of a create must first look the resource up (a `CreateVpc` whose response was lost has created a VPC, and a
//! blind SDK retry would create a second one).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::engine::{ErrorClass, StepError};

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
            let detail = match &code {
                Some(c) => format!("{c}: {msg}"),
                None => format!("HTTP {status} {msg}"),
            };
            (class, code, detail)
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            (ErrorClass::Transient, None, DisplayErrorContext(&err).to_string())
        }
        _ => (ErrorClass::Permanent, None, DisplayErrorContext(&err).to_string()),
    };
    StepError { class, code, message: format!("{what}: {detail}"), source: Some(Box::new(err)) }
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
