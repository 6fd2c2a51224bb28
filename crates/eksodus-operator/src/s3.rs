//! Migration sources in S3: `s3://bucket/key` names one object (an etcd snapshot, an EncryptionConfiguration)
//! and `s3://bucket/prefix/` a bundle directory. They are downloaded into the migration's work directory
//! before the export or the apply, and only what changed is downloaded again: a restarted operator, or the next
//! reconcile, compares each object's ETag with the one it recorded.
//!
//! Every S3 call is a read, retried on its own by core's caller (throttling waited out, a dropped connection
//! or a 5xx sent again, a body cut short fetched again) and paced by the process's rate limiter for S3.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use aws_config::SdkConfig;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use eksodus::core::aws::Calls;
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use crate::Error;

/// How many objects of a bundle are downloaded at once.
const PARALLEL: usize = 8;

/// An `s3://bucket/key` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    /// The bucket.
    pub bucket: String,
    /// The key, or the prefix of a directory (empty: the whole bucket).
    pub key: String,
}

impl std::fmt::Display for S3Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl S3Uri {
    /// `None` when `s` is not an `s3://` address (a local path); the reason when it is one but malformed.
    pub fn parse(s: &str) -> Option<Result<S3Uri, String>> {
        let rest = s.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        Some(check_bucket(bucket).map(|()| S3Uri { bucket: bucket.to_string(), key: key.to_string() }))
    }

    /// The key as a directory prefix: empty, or ending in `/`.
    pub fn prefix(&self) -> String {
        if self.key.is_empty() || self.key.ends_with('/') {
            self.key.clone()
        } else {
            format!("{}/", self.key)
        }
    }
}

/// S3's bucket naming rules (general purpose buckets): 3 to 63 characters of lower-case letters, digits, dots
/// and hyphens, beginning and ending with a letter or digit, no two adjacent dots, not an IP address.
fn check_bucket(b: &str) -> Result<(), String> {
    let ok_chars = b.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&b.len()) {
        return Err(format!("bucket `{b}` must be 3 to 63 characters long"));
    }
    if !ok_chars || !edge(b.chars().next()) || !edge(b.chars().last()) || b.contains("..") {
        return Err(format!(
            "bucket `{b}` is not a valid bucket name (lower-case letters, digits, dots and hyphens; a letter or digit at each end)"
        ));
    }
    if b.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!("bucket `{b}` is an IP address, not a bucket name"));
    }
    Ok(())
}

/// Where the object `key` under `prefix` goes inside a download directory: `None` for directory markers
/// (keys ending in `/`); an error for a key that would leave the directory (`..`, an absolute or empty
/// component), since a bucket's keys are not trusted to be tidy.
pub fn local_path(prefix: &str, key: &str) -> Result<Option<PathBuf>, String> {
    let rel = key.strip_prefix(prefix).ok_or_else(|| format!("key `{key}` is not under `{prefix}`"))?;
    if rel.is_empty() || rel.ends_with('/') {
        return Ok(None);
    }
    let mut out = PathBuf::new();
    for part in rel.split('/') {
        let mut c = Path::new(part).components();
        match (c.next(), c.next()) {
            (Some(Component::Normal(p)), None) if !part.contains('\\') => out.push(p),
            _ => return Err(format!("key `{key}` has the path component `{part}`, which would leave the directory")),
        }
    }
    Ok(Some(out))
}

/// An S3 client with its retrying caller.
#[derive(Debug, Clone)]
pub struct S3 {
    client: aws_sdk_s3::Client,
    calls: Calls,
}

impl S3 {
    /// The client for `conf` (its SDK retries off: the caller retries each call): path-style addresses when an
    /// endpoint is set (a local emulator, or a VPC endpoint by IP), checksums only where S3 requires them
    /// (emulators differ in the newer ones).
    pub fn new(conf: &SdkConfig) -> S3 {
        let conf = eksodus::aws::without_sdk_retries(conf);
        let c = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(conf.endpoint_url().is_some())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        S3 { client: aws_sdk_s3::Client::from_conf(c), calls: Calls::new("s3", &conf) }
    }
}

/// What a download did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Fetched {
    /// Objects downloaded now.
    pub downloaded: u64,
    /// Objects already present with the same ETag.
    pub unchanged: u64,
    /// Bytes downloaded now.
    pub bytes: u64,
}

impl std::ops::AddAssign for Fetched {
    fn add_assign(&mut self, o: Fetched) {
        self.downloaded += o.downloaded;
        self.unchanged += o.unchanged;
        self.bytes += o.bytes;
    }
}

/// One object in a listing.
struct Listed {
    key: String,
    etag: String,
    path: PathBuf,
}

/// The record of what a download directory holds (key -> ETag), beside it.
fn record_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".s3.json");
    dest.with_file_name(name)
}

fn io_err(uri: &S3Uri, what: &Path, e: std::io::Error) -> Error {
    Error::Source(format!("{uri}: {}: {e}", what.display()))
}

/// Downloads the object `uri` to the file `dest` (again only when its ETag changed).
pub async fn fetch_object(s3: &S3, uri: &S3Uri, dest: &Path) -> Result<Fetched, Error> {
    let client = &s3.client;
    let head = s3
        .calls
        .read_step(format!("HeadObject {uri}"), || client.head_object().bucket(&uri.bucket).key(&uri.key).send())
        .await
        .map_err(|source| Error::S3 { uri: uri.to_string(), source })?;
    let etag = head.e_tag().unwrap_or_default().to_string();
    let listed = Listed { key: uri.key.clone(), etag, path: dest.to_path_buf() };
    sync(s3, uri, dest, vec![listed]).await
}

/// Mirrors every object under the prefix `uri` into the directory `dest`: changed objects downloaded, objects
/// no longer in the bucket removed (the directory is the operator's own copy).
pub async fn fetch_prefix(s3: &S3, uri: &S3Uri, dest: &Path) -> Result<Fetched, Error> {
    let client = &s3.client;
    let prefix = uri.prefix();
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = s3
            .calls
            .read_step(format!("ListObjectsV2 {uri}"), || {
                client
                    .list_objects_v2()
                    .bucket(&uri.bucket)
                    .prefix(&prefix)
                    .set_continuation_token(token.clone())
                    .send()
            })
            .await
            .map_err(|source| Error::S3 { uri: uri.to_string(), source })?;
        for o in page.contents() {
            let key = o.key().unwrap_or_default();
            let rel = local_path(&prefix, key).map_err(|m| Error::Source(format!("{uri}: {m}")))?;
            if let Some(rel) = rel {
                listed.push(Listed {
                    key: key.to_string(),
                    etag: o.e_tag().unwrap_or_default().into(),
                    path: dest.join(rel),
                });
            }
        }
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() || !page.is_truncated().unwrap_or(false) {
            break;
        }
    }
    if listed.is_empty() {
        return Err(Error::Source(format!("{uri}: no objects under this prefix")));
    }
    sync(s3, uri, dest, listed).await
}

/// Downloads the listed objects whose ETag differs from the record, then rewrites the record.
async fn sync(s3: &S3, uri: &S3Uri, dest: &Path, listed: Vec<Listed>) -> Result<Fetched, Error> {
    let record = record_path(dest);
    let old: BTreeMap<String, String> =
        std::fs::read_to_string(&record).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let mut out = Fetched::default();
    let mut todo = Vec::new();
    for l in &listed {
        if !l.etag.is_empty() && old.get(&l.key) == Some(&l.etag) && l.path.is_file() {
            out.unchanged += 1;
        } else {
            todo.push(l);
        }
    }
    // the record goes first, so a crash mid-download never leaves a stale ETag beside a new file
    let kept: BTreeMap<&String, &String> =
        old.iter().filter(|(k, _)| listed.iter().any(|l| &&l.key == k && !todo.iter().any(|t| &t.key == *k))).collect();
    write_record(uri, &record, &kept)?;
    for (key, _) in old.iter().filter(|(k, _)| !listed.iter().any(|l| &l.key == *k)) {
        let prefix = uri.prefix();
        if let Ok(Some(rel)) = local_path(&prefix, key) {
            let _ = std::fs::remove_file(dest.join(rel));
        }
    }
    // boxed one by one: a stream mapped by a closure over borrowed items is not provably Send to the
    // controller's spawn (rust-lang/rust#102211)
    let jobs: Vec<futures::future::BoxFuture<'_, Result<u64, Error>>> =
        todo.iter().map(|l| Box::pin(download(s3, uri, l)) as _).collect();
    let bytes: Vec<u64> = futures::stream::iter(jobs).buffer_unordered(PARALLEL).try_collect().await?;
    out.downloaded = bytes.len() as u64;
    out.bytes = bytes.iter().sum();
    let all: BTreeMap<&String, &String> = listed.iter().map(|l| (&l.key, &l.etag)).collect();
    write_record(uri, &record, &all)?;
    Ok(out)
}

fn write_record(uri: &S3Uri, record: &Path, m: &BTreeMap<&String, &String>) -> Result<(), Error> {
    if let Some(parent) = record.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(uri, parent, e))?;
    }
    let text = serde_json::to_string_pretty(m).unwrap_or_default();
    std::fs::write(record, text).map_err(|e| io_err(uri, record, e))
}

/// One object into a `.part` file renamed into place when complete: a reader never sees half an object.
async fn download(s3: &S3, uri: &S3Uri, l: &Listed) -> Result<u64, Error> {
    use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
    if let Some(parent) = l.path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(|e| io_err(uri, parent, e))?;
    }
    let mut part = l.path.clone().into_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    let what = format!("GetObject s3://{}/{}", uri.bucket, l.key);
    let (client, part_ref) = (&s3.client, &part);
    let n = s3
        .calls
        .read_step(what, move || async move {
            let resp = client.get_object().bucket(&uri.bucket).key(&l.key).send().await?;
            let expected = resp.content_length();
            let mut body = resp.body;
            // a failure of the local file is not S3's: it is carried out as an error the retry does not repeat
            let mut file = match tokio::fs::File::create(part_ref).await {
                Ok(f) => f,
                Err(e) => return Ok(Err(e)),
            };
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                // a body cut short is a failed receive: the whole object is asked for again
                let chunk = chunk.map_err(|e| SdkError::dispatch_failure(ConnectorError::io(e.into())))?;
                n += chunk.len() as u64;
                if let Err(e) = file.write_all(&chunk).await {
                    return Ok(Err(e));
                }
            }
            if expected.is_some_and(|len| len >= 0 && len as u64 != n) {
                let short = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "body shorter than its length");
                return Err(SdkError::dispatch_failure(ConnectorError::io(short.into())));
            }
            Ok(file.flush().await.map(|()| n))
        })
        .await
        .map_err(|source| Error::S3 { uri: format!("s3://{}/{}", uri.bucket, l.key), source })?
        .map_err(|e| io_err(uri, &part, e))?;
    tokio::fs::rename(&part, &l.path).await.map_err(|e| io_err(uri, &l.path, e))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn addresses_parse_and_bad_buckets_are_named() {
        assert_eq!(S3Uri::parse("/data/bundle"), None);
        let u = S3Uri::parse("s3://team-a.backups/bundles/shop").unwrap().unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.key.as_str(), u.prefix().as_str()),
            ("team-a.backups", "bundles/shop", "bundles/shop/")
        );
        assert_eq!(S3Uri::parse("s3://bucket").unwrap().unwrap().prefix(), "");
        for (bad, says) in [
            ("s3://ab/k", "3 to 63"),
            ("s3://Upper/k", "not a valid bucket name"),
            ("s3://-edge/k", "not a valid bucket name"),
            ("s3://a..b/k", "not a valid bucket name"),
            ("s3://192.168.1.1/k", "IP address"),
        ] {
            let e = S3Uri::parse(bad).unwrap().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn keys_map_into_the_directory_or_are_refused() {
        assert_eq!(local_path("b/", "b/manifest.json").unwrap(), Some(PathBuf::from("manifest.json")));
        assert_eq!(local_path("b/", "b/objects/v1/a.yaml").unwrap(), Some(PathBuf::from("objects/v1/a.yaml")));
        assert_eq!(local_path("b/", "b/objects/").unwrap(), None);
        assert_eq!(local_path("", "x.yaml").unwrap(), Some(PathBuf::from("x.yaml")));
        for bad in ["b/../etc/passwd", "b//x", "b/./x", "b/a\\..\\x"] {
            assert!(local_path("b/", bad).is_err(), "{bad}");
        }
        assert!(local_path("b/", "c/x").is_err());
    }

    #[test]
    fn the_record_sits_beside_the_directory() {
        assert_eq!(record_path(Path::new("/w/source/bundle")), PathBuf::from("/w/source/bundle.s3.json"));
    }

    proptest! {
        /// Whatever a bucket's keys are, a download never writes outside its directory.
        #[test]
        fn no_key_leaves_the_directory(parts in proptest::collection::vec("[a-z.\\\\/]{0,4}", 1..5)) {
            let key = format!("p/{}", parts.join("/"));
            if let Ok(Some(rel)) = local_path("p/", &key) {
                prop_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))), "{key} -> {rel:?}");
                prop_assert!(rel.components().count() >= 1);
            }
        }
    }
}
