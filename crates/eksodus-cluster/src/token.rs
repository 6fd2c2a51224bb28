//! The EKS bearer token, natively: a SigV4 query-presigned STS `GetCallerIdentity` URL whose signed headers
//! include `x-k8s-aws-id: <cluster>`, encoded as `k8s-aws-v1.` + unpadded base64url. This is what
//! `aws eks get-token` and aws-iam-authenticator produce; no aws CLI is needed. Pure: the caller supplies the
//! credentials and the time.

use std::fmt::Write as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How long the presigned URL itself is valid (what the AWS CLI uses).
pub const PRESIGN_SECONDS: u64 = 60;
/// How long EKS accepts a token: 15 minutes from signing.
pub const TOKEN_LIFETIME_SECONDS: u64 = 15 * 60;
/// The expiry given to kubectl, a minute early so a token is refreshed before EKS refuses it.
pub const REFRESH_AFTER_SECONDS: u64 = 14 * 60;
// kubectl must ask for a new token before EKS stops accepting the old one
const _: () = assert!(REFRESH_AFTER_SECONDS < TOKEN_LIFETIME_SECONDS);

/// Prefix of every EKS token.
pub const PREFIX: &str = "k8s-aws-v1.";

/// AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key ID.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// A UTC time, seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// Now.
    pub fn now() -> Self {
        UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
    }

    /// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)`.
    fn amz(self) -> (String, String) {
        let (y, m, d, hh, mm, ss) = civil(self.0);
        (format!("{y:04}{m:02}{d:02}"), format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z"))
    }

    /// RFC 3339, as Kubernetes writes timestamps.
    pub fn rfc3339(self) -> String {
        let (y, m, d, hh, mm, ss) = civil(self.0);
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// Days-from-civil inverse (Howard Hinnant's algorithm): seconds since the epoch to a UTC date and time.
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (rem / 3600) as u32, (rem % 3600 / 60) as u32, (rem % 60) as u32)
}

/// RFC 3986 encoding as SigV4 wants it: everything but unreserved characters.
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The STS host of a region.
pub fn sts_host(region: &str) -> String {
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("sts.{region}.{suffix}")
}

/// The presigned `GetCallerIdentity` URL for `cluster`.
pub fn presigned_url(cluster: &str, region: &str, creds: &Credentials, at: UnixTime) -> String {
    let host = sts_host(region);
    let (date, stamp) = at.amz();
    let scope = format!("{date}/{region}/sts/aws4_request");
    // query parameters in the order they appear in the URL; the canonical form sorts them
    let mut params: Vec<(String, String)> = vec![
        ("Action".into(), "GetCallerIdentity".into()),
        ("Version".into(), "2011-06-15".into()),
        ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
        ("X-Amz-Credential".into(), format!("{}/{scope}", creds.access_key_id)),
        ("X-Amz-Date".into(), stamp.clone()),
        ("X-Amz-Expires".into(), PRESIGN_SECONDS.to_string()),
        ("X-Amz-SignedHeaders".into(), "host;x-k8s-aws-id".into()),
    ];
    if let Some(t) = &creds.session_token {
        params.push(("X-Amz-Security-Token".into(), t.clone()));
    }
    let encoded: Vec<(String, String)> = params.iter().map(|(k, v)| (uri_encode(k), uri_encode(v))).collect();
    let mut sorted = encoded.clone();
    sorted.sort();
    let canonical_query = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let empty_payload = hex(&Sha256::digest(b""));
    let canonical =
        format!("GET\n/\n{canonical_query}\nhost:{host}\nx-k8s-aws-id:{cluster}\n\nhost;x-k8s-aws-id\n{empty_payload}");
    let to_sign = format!("AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let k_date = hmac(format!("AWS4{}", creds.secret_access_key).as_bytes(), &date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, "sts");
    let k_signing = hmac(&k_service, "aws4_request");
    let signature = hex(&hmac(&k_signing, &to_sign));
    let query = encoded.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    format!("https://{host}/?{query}&X-Amz-Signature={signature}")
}

/// The bearer token for `cluster`.
pub fn token(cluster: &str, region: &str, creds: &Credentials, at: UnixTime) -> String {
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(presigned_url(cluster, region, creds, at)))
}

/// A token kept fresh for a long-lived client: the same token until [`REFRESH_AFTER_SECONDS`] have passed since
/// it was signed, then a new one. A Kubernetes client that asks it for every request (a delete waiting for load
/// balancers to go, an upgrade's preflight) never sends a token EKS has stopped accepting.
#[derive(Debug)]
pub struct Fresh {
    cluster: String,
    region: String,
    creds: Credentials,
    current: std::sync::Mutex<Option<(UnixTime, String)>>,
}

impl Fresh {
    /// Tokens for `cluster` in `region`, signed with `creds`.
    pub fn new(cluster: &str, region: &str, creds: Credentials) -> Self {
        Fresh { cluster: cluster.into(), region: region.into(), creds, current: std::sync::Mutex::new(None) }
    }

    /// The token to send at `now`.
    pub fn at(&self, now: UnixTime) -> String {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match &*cur {
            Some((signed, tok)) if now.0 >= signed.0 && now.0 - signed.0 < REFRESH_AFTER_SECONDS => tok.clone(),
            _ => {
                let tok = token(&self.cluster, &self.region, &self.creds, now);
                *cur = Some((now, tok.clone()));
                tok
            }
        }
    }
}

/// The `ExecCredential` a kubeconfig `exec` entry expects on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredential {
    /// `ExecCredential`.
    pub kind: &'static str,
    /// `client.authentication.k8s.io/v1beta1`.
    pub api_version: &'static str,
    /// Empty.
    pub spec: serde_json::Value,
    /// The token and when to get a new one.
    pub status: ExecStatus,
}

/// The status of an [`ExecCredential`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecStatus {
    /// When kubectl must ask again (a minute before EKS stops accepting the token).
    pub expiration_timestamp: String,
    /// The bearer token.
    pub token: String,
}

/// The `ExecCredential` for `cluster`, signed at `at`.
pub fn exec_credential(cluster: &str, region: &str, creds: &Credentials, at: UnixTime) -> ExecCredential {
    ExecCredential {
        kind: "ExecCredential",
        api_version: "client.authentication.k8s.io/v1beta1",
        spec: serde_json::json!({}),
        status: ExecStatus {
            expiration_timestamp: UnixTime(at.0 + REFRESH_AFTER_SECONDS).rfc3339(),
            token: token(cluster, region, creds, at),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-02T03:04:05Z.
    const AT: UnixTime = UnixTime(1_767_323_045);

    fn creds(session: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: session.map(String::from),
        }
    }

    #[test]
    fn dates_are_utc_civil() {
        assert_eq!(AT.amz(), ("20260102".into(), "20260102T030405Z".into()));
        assert_eq!(UnixTime(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(UnixTime(951_782_400).rfc3339(), "2000-02-29T00:00:00Z");
    }

    /// Reference vectors from botocore 1.44.8's SigV4 query presigner (what `aws eks get-token` uses), made by
    /// `testdata/token_vector.py` with the same credentials and time.
    #[test]
    fn token_matches_the_reference_presigner_byte_for_byte() {
        let url = presigned_url("demo-cluster", "us-east-1", &creds(None), AT);
        assert_eq!(
            url,
            "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260102%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20260102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=699b7615ffb6f1646cb9ce8c74dd24f1e2c8f0575dc7ecb630bbc324dbf93428"
        );
        assert_eq!(
            token("demo-cluster", "us-east-1", &creds(None), AT),
            "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtZWFzdC0xLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BS0lERVhBTVBMRSUyRjIwMjYwMTAyJTJGdXMtZWFzdC0xJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyNjAxMDJUMDMwNDA1WiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TaWduYXR1cmU9Njk5Yjc2MTVmZmI2ZjE2NDZjYjljZThjNzRkZDI0ZjFlMmM4ZjA1NzVkYzdlY2I2MzBiYmMzMjRkYmY5MzQyOA"
        );
        assert_eq!(
            presigned_url("prod-eu", "eu-west-1", &creds(Some("FQoGZXIvYXdzEXAMPLE//+token=")), AT),
            "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260102%2Feu-west-1%2Fsts%2Faws4_request&X-Amz-Date=20260102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLE%2F%2F%2Btoken%3D&X-Amz-Signature=c40e44ffe324d0310139f3c278ae02f0cadabaec8d0c3b5c35e13cd39cbf61db"
        );
    }

    #[test]
    fn exec_credential_expires_before_eks_refuses_the_token() {
        let c = exec_credential("demo-cluster", "us-east-1", &creds(None), AT);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1beta1");
        assert_eq!(v["status"]["expirationTimestamp"], "2026-01-02T03:18:05Z");
        assert!(v["status"]["token"].as_str().unwrap().starts_with(PREFIX));
    }

    #[test]
    fn a_fresh_token_is_signed_again_before_eks_would_refuse_it() {
        let creds =
            Credentials { access_key_id: "AKID".into(), secret_access_key: "secret".into(), session_token: None };
        let fresh = Fresh::new("c", "us-east-1", creds.clone());
        let t0 = UnixTime(1_700_000_000);
        let first = fresh.at(t0);
        assert_eq!(first, token("c", "us-east-1", &creds, t0));
        assert_eq!(fresh.at(UnixTime(t0.0 + 60)), first, "reused while valid");
        assert_eq!(fresh.at(UnixTime(t0.0 + REFRESH_AFTER_SECONDS - 1)), first);
        let later = UnixTime(t0.0 + REFRESH_AFTER_SECONDS);
        assert_eq!(fresh.at(later), token("c", "us-east-1", &creds, later), "signed again at the refresh point");
        // a clock that went back (a suspended laptop, NTP) signs again rather than trusting an unknown age
        assert_eq!(fresh.at(t0), first);
    }
}
