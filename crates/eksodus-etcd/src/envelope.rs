//! What a stored value is: the `k8s\0` protobuf envelope (`runtime.Unknown`: `typeMeta` 1 with `apiVersion` 1
//! and `kind` 2, `raw` 2, `contentEncoding` 3, `contentType` 4), JSON (custom resources, and anything written
//! with the JSON storage media type), or an encrypted value (`k8s:enc:<provider>:v1:<key name>:` then the
//! ciphertext).

use serde::Serialize;

use crate::pb::{self, Wire};

/// The prefix of protobuf-encoded values.
pub const PROTOBUF_MAGIC: &[u8] = b"k8s\x00";
/// The prefix of encrypted values.
pub const ENCRYPTED: &[u8] = b"k8s:enc:";

/// A stored value, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "encoding", rename_all = "snake_case")]
pub enum Stored<'a> {
    /// A protobuf object in the `k8s\0` envelope.
    Protobuf {
        /// `apiVersion` of the envelope.
        api_version: String,
        /// `kind` of the envelope.
        kind: String,
        /// The object's protobuf bytes.
        #[serde(skip)]
        raw: &'a [u8],
        /// `contentEncoding`, usually empty.
        content_encoding: String,
        /// `contentType`, usually empty.
        content_type: String,
    },
    /// A JSON object.
    Json(#[serde(skip)] &'a [u8]),
    /// An encrypted value.
    Encrypted {
        /// `aescbc`, `aesgcm`, `secretbox`, `kms`, `identity`, ...
        provider: String,
        /// `v1` or `v2`.
        version: String,
        /// The key name from the EncryptionConfiguration (empty for KMS v2, which names its key inside).
        key_name: String,
        /// The encrypted bytes.
        #[serde(skip)]
        ciphertext: &'a [u8],
    },
}

/// Classifies a stored value; `Err` says why it is none of the known forms.
pub fn classify(v: &[u8]) -> Result<Stored<'_>, String> {
    if let Some(body) = v.strip_prefix(PROTOBUF_MAGIC) {
        let (mut api_version, mut kind, mut raw, mut ce, mut ct) =
            (String::new(), String::new(), &[][..], String::new(), String::new());
        for (n, w) in pb::fields(body)? {
            match (n, w) {
                (1, Wire::Bytes(tm)) => {
                    for (m, x) in pb::fields(tm)? {
                        match (m, x) {
                            (1, Wire::Bytes(s)) => api_version = String::from_utf8_lossy(s).into(),
                            (2, Wire::Bytes(s)) => kind = String::from_utf8_lossy(s).into(),
                            _ => {}
                        }
                    }
                }
                (2, Wire::Bytes(r)) => raw = r,
                (3, Wire::Bytes(s)) => ce = String::from_utf8_lossy(s).into(),
                (4, Wire::Bytes(s)) => ct = String::from_utf8_lossy(s).into(),
                _ => {}
            }
        }
        if kind.is_empty() {
            return Err("protobuf envelope without a kind".into());
        }
        return Ok(Stored::Protobuf { api_version, kind, raw, content_encoding: ce, content_type: ct });
    }
    if let Some(rest) = v.strip_prefix(ENCRYPTED) {
        // <provider>:<version>:<key name>:<ciphertext>; KMS v2 has no key name in the prefix
        let mut parts = rest.splitn(3, |b| *b == b':');
        let provider = String::from_utf8_lossy(parts.next().unwrap_or_default()).to_string();
        let version = String::from_utf8_lossy(parts.next().unwrap_or_default()).to_string();
        let tail = parts.next().ok_or("encrypted value cut off after its prefix")?;
        if provider == "kms" && version == "v2" {
            return Ok(Stored::Encrypted { provider, version, key_name: String::new(), ciphertext: tail });
        }
        let i = tail.iter().position(|b| *b == b':').ok_or("encrypted value without a key name")?;
        return Ok(Stored::Encrypted {
            provider,
            version,
            key_name: String::from_utf8_lossy(&tail[..i]).into(),
            ciphertext: &tail[i + 1..],
        });
    }
    let first = v.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        return Ok(Stored::Json(v));
    }
    Err(format!(
        "neither protobuf, JSON, nor encrypted (starts with {:?})",
        String::from_utf8_lossy(&v[..v.len().min(8)])
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms() {
        let mut tm = Vec::new();
        pb::put_bytes(&mut tm, 1, b"v1");
        pb::put_bytes(&mut tm, 2, b"ConfigMap");
        let mut body = Vec::new();
        pb::put_bytes(&mut body, 1, &tm);
        pb::put_bytes(&mut body, 2, b"\x0a\x00");
        let v = [PROTOBUF_MAGIC, &body].concat();
        match classify(&v).unwrap() {
            Stored::Protobuf { api_version, kind, raw, .. } => {
                assert_eq!((api_version.as_str(), kind.as_str(), raw), ("v1", "ConfigMap", &b"\x0a\x00"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify(b" {\"a\":1}").unwrap(), Stored::Json(_)));
        match classify(b"k8s:enc:aescbc:v1:key1:\x01\x02").unwrap() {
            Stored::Encrypted { provider, key_name, ciphertext, .. } => {
                assert_eq!((provider.as_str(), key_name.as_str(), ciphertext), ("aescbc", "key1", &b"\x01\x02"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify(b"k8s:enc:kms:v2:\x0a\x01").unwrap(), Stored::Encrypted { .. }));
        assert!(classify(b"garbage").is_err());
        assert!(classify(b"k8s\x00\xff").is_err());
    }
}
