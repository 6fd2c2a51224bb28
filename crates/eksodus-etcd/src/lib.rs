//! Kubernetes objects out of an etcd snapshot or data directory, with no etcd or API server running: the
//! dead-control-plane case. Everything readable is recovered; what is not is listed with its page, key and
//! reason.
//!
//! Layers: [`bolt`] (the bbolt file), [`mvcc`] (etcd's revisions), [`keys`] (keys to resources), [`envelope`]
//! (protobuf, JSON or encrypted values), [`pb`] (the protobuf wire format). [`Snapshot`] ties them together.

pub mod bolt;
pub mod decode;
pub mod encryption;
pub mod envelope;
pub mod keys;
pub mod mvcc;
pub mod pb;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use bolt::Damage;

/// Errors that stop a read as a whole (per-key problems are [`Damage`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not a bbolt file at all, or both meta pages are unreadable.
    #[error("{path}: {message}")]
    NotBolt {
        /// The path.
        path: String,
        /// Why.
        message: String,
    },
}

/// What `etcdctl snapshot save` appended, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Integrity {
    /// A trailing sha256 matches the content.
    HashMatches,
    /// A trailing sha256 is there and does not match: the file changed after it was saved.
    HashMismatch,
    /// No trailing hash (a data directory's `db`, or a copied file).
    NoHash,
}

/// One live key at the chosen revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The etcd key.
    pub key: String,
    /// The resource it holds (when the key layout is known).
    pub resource: Option<keys::Resource>,
    /// Creation revision.
    pub create_revision: i64,
    /// Last modification revision (the object's resourceVersion).
    pub mod_revision: i64,
    /// The `key`-bucket revision of this version (`main` is `mod_revision`).
    #[serde(skip)]
    pub revision: mvcc::Revision,
    /// The stored value (empty in a [`Snapshot::scan`]: see [`Snapshot::for_each_value`]).
    #[serde(skip)]
    pub value: Vec<u8>,
}

/// A snapshot read to a revision.
#[derive(Debug)]
pub struct Snapshot {
    /// The file read.
    pub path: PathBuf,
    /// Trailing-hash check.
    pub integrity: Integrity,
    /// The meta page used.
    pub meta: bolt::Meta,
    /// What etcd's `meta` bucket says.
    pub info: mvcc::MetaInfo,
    /// Lowest and highest main revision present.
    pub revisions: Option<(i64, i64)>,
    /// The revision read at.
    pub revision: i64,
    /// Live keys, sorted.
    pub entries: Vec<Entry>,
    /// Pages in the freelist.
    pub free_pages: usize,
    /// What could not be read.
    pub damage: Vec<Damage>,
    /// Whether `entries` hold their values (false after [`Snapshot::scan`]).
    held: bool,
}

/// The file to read: a snapshot file, or `member/snap/db` inside a data directory.
pub fn db_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        let inner = p.join("member/snap/db");
        if inner.exists() {
            return inner;
        }
        return p.join("snap/db");
    }
    p.to_path_buf()
}

/// Checks the sha256 `etcdctl snapshot save` appends (the file's length is then 32 past a multiple of 512).
pub fn integrity(data: &[u8]) -> (Integrity, &[u8]) {
    if data.len() % 512 == 32 && data.len() > 32 {
        let (body, sum) = data.split_at(data.len() - 32);
        let ok = Sha256::digest(body).as_slice() == sum;
        return (if ok { Integrity::HashMatches } else { Integrity::HashMismatch }, body);
    }
    (Integrity::NoHash, data)
}

/// [`integrity`] for a file, hashing it in chunks.
fn file_integrity(f: &std::fs::File, len: u64) -> std::io::Result<Integrity> {
    use std::os::unix::fs::FileExt;
    if len % 512 != 32 || len <= 32 {
        return Ok(Integrity::NoHash);
    }
    let body = len - 32;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < body {
        let n = (body - off).min(buf.len() as u64) as usize;
        f.read_exact_at(&mut buf[..n], off)?;
        h.update(&buf[..n]);
        off += n as u64;
    }
    let mut sum = [0u8; 32];
    f.read_exact_at(&mut sum, body)?;
    Ok(if h.finalize().as_slice() == sum { Integrity::HashMatches } else { Integrity::HashMismatch })
}

impl Snapshot {
    /// Reads a snapshot file or data directory at `revision` (`None`: the newest), page by page: the file is
    /// never held whole, only the live keys' newest values.
    pub fn open(path: &Path, revision: Option<i64>) -> Result<Snapshot, Error> {
        Self::open_file(path, revision, true)
    }

    /// Like [`open`](Self::open), holding no values: only keys, revisions and damage. Memory does not grow
    /// with the values' size; [`for_each_value`](Self::for_each_value) reads them again one at a time.
    pub fn scan(path: &Path, revision: Option<i64>) -> Result<Snapshot, Error> {
        Self::open_file(path, revision, false)
    }

    fn open_file(path: &Path, revision: Option<i64>, keep_values: bool) -> Result<Snapshot, Error> {
        let file = db_path(path);
        let io = |source| Error::Io { path: file.display().to_string(), source };
        let f = std::fs::File::open(&file).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        // whether a trailing hash is there follows from the length; checking it runs beside the read
        let hashed = len % 512 == 32 && len > 32;
        let body = if hashed { len - 32 } else { len };
        let hf = f.try_clone().map_err(io)?;
        let (integrity, snap) = std::thread::scope(|sc| {
            let h = sc.spawn(move || file_integrity(&hf, len));
            let snap = bolt::Db::open_file(f, body)
                .map_err(|message| Error::NotBolt { path: file.display().to_string(), message })
                .map(|db| Self::read(&file, Integrity::NoHash, db, revision, keep_values));
            let integrity = h.join().unwrap_or_else(|_| Err(std::io::Error::other("hashing thread panicked")));
            (integrity, snap)
        });
        let mut snap = snap?;
        snap.integrity = integrity.map_err(io)?;
        Ok(snap)
    }

    /// Calls `f` with every live entry and its stored value, in the file's order (not the keys' order). After
    /// [`scan`](Self::scan) the values are read again from the file page by page, so one is held at a time;
    /// otherwise the held values are used. Entries whose value is not found again (the file changed since
    /// the scan) come back as damage.
    pub fn for_each_value(&self, mut f: impl FnMut(&Entry, &[u8])) -> Result<Vec<Damage>, Error> {
        if self.held {
            for e in &self.entries {
                f(e, &e.value);
            }
            return Ok(vec![]);
        }
        let io = |source| Error::Io { path: self.path.display().to_string(), source };
        let file = std::fs::File::open(&self.path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let body = if self.integrity == Integrity::NoHash { len } else { len.saturating_sub(32) };
        let mut db = bolt::Db::open_file(file, body)
            .map_err(|message| Error::NotBolt { path: self.path.display().to_string(), message })?;
        let wanted: std::collections::HashMap<mvcc::Revision, usize> =
            self.entries.iter().enumerate().map(|(i, e)| (e.revision, i)).collect();
        let mut seen = vec![false; self.entries.len()];
        if let Some(b) = db.bucket(b"key") {
            db.walk(b, "key", &mut |it| {
                let bolt::Item::Value(k, v) = it else { return };
                let Some(&i) = mvcc::parse_revision(k).and_then(|(r, _)| wanted.get(&r)) else { return };
                if seen[i] {
                    return;
                }
                if let Some(value) = mvcc::kv_value(v) {
                    seen[i] = true;
                    f(&self.entries[i], value);
                }
            });
        }
        Ok(seen
            .iter()
            .zip(&self.entries)
            .filter(|(s, _)| !**s)
            .map(|(_, e)| Damage {
                page: None,
                key: Some(e.key.clone()),
                reason: "its value was not found on the second read (did the file change?)".into(),
            })
            .collect())
    }

    /// Reads a snapshot's bytes.
    pub fn from_bytes(path: &Path, data: &[u8], revision: Option<i64>) -> Result<Snapshot, Error> {
        let (integrity, body) = integrity(data);
        let db =
            bolt::Db::open(body).map_err(|message| Error::NotBolt { path: path.display().to_string(), message })?;
        Ok(Self::read(path, integrity, db, revision, true))
    }

    fn read(
        path: &Path,
        integrity: Integrity,
        mut db: bolt::Db<'_>,
        revision: Option<i64>,
        keep_values: bool,
    ) -> Snapshot {
        let free_pages = db.freelist().len();
        let mut meta_items = Vec::new();
        if let Some(b) = db.bucket(b"meta") {
            db.walk(b, "meta", &mut |it| {
                if let bolt::Item::Value(k, v) = it {
                    meta_items.push((k.to_vec(), v.to_vec()));
                }
            });
        } else {
            db.damage.push(Damage { page: None, key: Some("meta".into()), reason: "no meta bucket".into() });
        }
        let info = mvcc::meta_info(&meta_items);
        let mut fold = if keep_values { mvcc::Fold::new(revision) } else { mvcc::Fold::without_values(revision) };
        match db.bucket(b"key") {
            Some(b) => db.walk(b, "key", &mut |it| {
                if let bolt::Item::Value(k, v) = it {
                    fold.push(k, v);
                }
            }),
            None => db.damage.push(Damage {
                page: None,
                key: Some("key".into()),
                reason: "no key bucket: not an etcd v3 database".into(),
            }),
        }
        let state = fold.finish();
        let mut damage = db.damage;
        damage.extend(state.damage);
        let entries = state
            .keys
            .into_values()
            .map(|(revision, kv)| {
                let key = String::from_utf8_lossy(&kv.key).to_string();
                Entry {
                    resource: keys::resource(&key, "/registry").ok(),
                    key,
                    create_revision: kv.create_revision,
                    mod_revision: kv.mod_revision,
                    revision,
                    value: kv.value,
                }
            })
            .collect();
        let newest = state.revisions.map_or(0, |r| r.1);
        Snapshot {
            path: path.to_path_buf(),
            integrity,
            meta: db.meta,
            info,
            revisions: state.revisions,
            revision: revision.map_or(newest, |r| r.min(newest)),
            entries,
            free_pages,
            damage,
            held: keep_values,
        }
    }

    /// Counts of live keys per resource (`group/resource`, or the key's second segment when unknown).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for e in &self.entries {
            let k = match &e.resource {
                Some(r) if r.group.is_empty() => r.resource.clone(),
                Some(r) => format!("{}/{}", r.group, r.resource),
                None => format!("(other) {}", e.key.split('/').take(3).collect::<Vec<_>>().join("/")),
            };
            *m.entry(k).or_insert(0) += 1;
        }
        m
    }

    /// Counts by value encoding (`protobuf`, `json`, `encrypted:<provider>`, `unknown`; `unreadable` for values
    /// a [`scan`](Self::scan) could not read again).
    pub fn encodings(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        let read = self.for_each_value(|_, v| {
            let k = match envelope::classify(v) {
                Ok(envelope::Stored::Protobuf { .. }) => "protobuf".to_string(),
                Ok(envelope::Stored::Json(_)) => "json".to_string(),
                Ok(envelope::Stored::Encrypted { provider, .. }) => format!("encrypted:{provider}"),
                Err(_) => "unknown".to_string(),
            };
            *m.entry(k).or_insert(0) += 1;
        });
        let lost = match read {
            Ok(lost) => lost.len(),
            Err(_) => self.entries.len() - m.values().sum::<usize>(),
        };
        if lost > 0 {
            m.insert("unreadable".to_string(), lost);
        }
        m
    }
}

/// An object recovered from a snapshot, or why it could not be.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovered {
    /// The object as the API server would serve it (`metadata.resourceVersion` is the key's mod revision).
    Object(serde_json::Value),
    /// It could not be read back.
    Lost {
        /// The etcd key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Decodes one stored value of `entry` to the JSON the API server would serve.
pub fn recover(entry: &Entry) -> Recovered {
    recover_with(entry, None)
}

/// Like [`recover`], decrypting values encrypted at rest with `keys` (from the API server's
/// EncryptionConfiguration).
pub fn recover_with(entry: &Entry, keys: Option<&encryption::Keys>) -> Recovered {
    recover_value(entry, &entry.value, keys)
}

/// Like [`recover_with`] for a value read separately (see [`Snapshot::for_each_value`]).
pub fn recover_value(entry: &Entry, value: &[u8], keys: Option<&encryption::Keys>) -> Recovered {
    match decode_value(value, entry.key.as_bytes(), keys) {
        Ok(mut obj) => {
            if entry.mod_revision > 0 {
                if let Some(m) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                    m.insert("resourceVersion".into(), serde_json::Value::String(entry.mod_revision.to_string()));
                }
            }
            Recovered::Object(obj)
        }
        Err(reason) => Recovered::Lost { key: entry.key.clone(), reason },
    }
}

/// Decodes one stored value (as `etcdctl get --print-value-only` prints it) to the JSON the API server would
/// serve, faithful to its bytes: fields present on the wire are kept, `metadata.resourceVersion` included when
/// the value holds one (the API server's own writes leave it out; the revision is etcd's). `key` is the etcd
/// key, the authenticated data of `aesgcm` values.
pub fn decode_value(value: &[u8], key: &[u8], keys: Option<&encryption::Keys>) -> Result<serde_json::Value, String> {
    let lost = |reason: String| Err(reason);
    let decrypted;
    let mut value: &[u8] = value;
    if let Ok(envelope::Stored::Encrypted { provider, key_name, ciphertext, .. }) = envelope::classify(value) {
        if provider != "kms" {
            let Some(keys) = keys else {
                return lost(format!(
                    "encrypted with {provider} key `{key_name}`: give the API server's EncryptionConfiguration"
                ));
            };
            match keys.decrypt(&provider, &key_name, ciphertext, key) {
                Ok(plain) => {
                    decrypted = plain;
                    value = &decrypted;
                }
                Err(e) => return lost(e),
            }
        }
    }
    let obj = match envelope::classify(value) {
        Ok(envelope::Stored::Protobuf { api_version, kind, raw, content_encoding, .. }) => {
            if !content_encoding.is_empty() {
                return lost(format!("content encoding {content_encoding} is not supported"));
            }
            match decode::object(&api_version, &kind, raw) {
                Ok(v) => v,
                Err(e) => return lost(e),
            }
        }
        Ok(envelope::Stored::Json(b)) => match serde_json::from_slice::<serde_json::Value>(b) {
            Ok(v) => v,
            Err(e) => return lost(format!("JSON value does not parse: {e}")),
        },
        Ok(envelope::Stored::Encrypted { provider, key_name, .. }) if provider == "kms" => {
            return lost(format!(
                "encrypted by KMS{}: the key lives in KMS and cannot be used offline",
                if key_name.is_empty() { String::new() } else { format!(" ({key_name})") }
            ))
        }
        Ok(envelope::Stored::Encrypted { provider, .. }) => {
            return lost(format!("encrypted twice ({provider} inside)"))
        }
        Err(e) => return lost(e),
    };
    Ok(obj)
}

/// The inspection report (`cargo xtask etcd inspect`).
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The file.
    pub path: String,
    /// Trailing hash.
    pub integrity: Integrity,
    /// Page size, transaction ID, pages in use.
    pub meta: bolt::Meta,
    /// etcd's meta bucket.
    pub info: mvcc::MetaInfo,
    /// Revision range.
    pub revisions: Option<(i64, i64)>,
    /// Live keys.
    pub keys: usize,
    /// Live keys per resource.
    pub resources: BTreeMap<String, usize>,
    /// Values per encoding.
    pub encodings: BTreeMap<String, usize>,
    /// Free pages.
    pub free_pages: usize,
    /// Damage.
    pub damage: Vec<Damage>,
}

impl From<&Snapshot> for Inspection {
    fn from(s: &Snapshot) -> Self {
        Inspection {
            path: s.path.display().to_string(),
            integrity: s.integrity.clone(),
            meta: s.meta,
            info: s.info.clone(),
            revisions: s.revisions,
            keys: s.entries.len(),
            resources: s.counts(),
            encodings: s.encodings(),
            free_pages: s.free_pages,
            damage: s.damage.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvcc::{encode_kv, revision_key, KeyValue, Revision};

    fn snapshot_bytes() -> Vec<u8> {
        let kv = |k: &str, rev: i64, v: &[u8]| KeyValue {
            key: k.into(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            value: v.to_vec(),
            lease: 0,
        };
        let keys = vec![
            (
                revision_key(Revision { main: 2, sub: 0 }, false),
                encode_kv(&kv("/registry/configmaps/a/x", 2, b"{\"kind\":\"ConfigMap\"}")),
            ),
            (
                revision_key(Revision { main: 3, sub: 0 }, false),
                encode_kv(&kv("/registry/namespaces/a", 3, b"{\"kind\":\"Namespace\"}")),
            ),
        ];
        let mut meta = vec![(b"consistent_index".to_vec(), 9u64.to_be_bytes().to_vec())];
        meta.push((b"finishedCompactRev".to_vec(), revision_key(Revision { main: 1, sub: 0 }, false)));
        bolt::testutil::build(&[("key", keys), ("meta", meta)])
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Any corruption of a snapshot (byte flips, truncation) gives a result or an error, never a panic, and
        /// every object it still returns decodes or is reported lost.
        #[test]
        fn corrupt_snapshots_never_panic(flips in proptest::collection::vec((0usize..40_000, proptest::prelude::any::<u8>()), 0..16), cut in 0usize..40_000) {
            let mut data = snapshot_bytes();
            for (at, b) in flips {
                if at < data.len() { data[at] ^= b; }
            }
            data.truncate(cut.min(data.len()));
            if let Ok(s) = Snapshot::from_bytes(Path::new("t"), &data, None) {
                for e in &s.entries {
                    let _ = recover(e);
                }
                let _ = Inspection::from(&s);
            }
            // the same bytes as a file, scanned and read again value by value
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("snap.db");
            std::fs::write(&path, &data).unwrap();
            if let Ok(s) = Snapshot::scan(&path, None) {
                let _ = s.for_each_value(|e, v| {
                    let _ = recover_value(e, v, None);
                });
                let _ = Inspection::from(&s);
            }
        }
    }

    #[test]
    fn reads_keys_with_and_without_the_trailing_hash() {
        let mut data = snapshot_bytes();
        let s = Snapshot::from_bytes(Path::new("t"), &data, None).unwrap();
        assert_eq!(s.integrity, Integrity::NoHash);
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.info.consistent_index, Some(9));
        assert_eq!(s.info.finished_compact, Some(1));
        assert_eq!(s.counts()["configmaps"], 1);
        assert_eq!(s.encodings()["json"], 2);
        let sum = Sha256::digest(&data).to_vec();
        data.extend_from_slice(&sum);
        assert_eq!(Snapshot::from_bytes(Path::new("t"), &data, None).unwrap().integrity, Integrity::HashMatches);
        let n = data.len();
        data[n - 1] ^= 1;
        assert_eq!(Snapshot::from_bytes(Path::new("t"), &data, None).unwrap().integrity, Integrity::HashMismatch);
        let at2 = Snapshot::from_bytes(Path::new("t"), &snapshot_bytes(), Some(2)).unwrap();
        assert_eq!(at2.entries.len(), 1);
    }

    #[test]
    fn a_scan_reads_the_values_again_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = snapshot_bytes();
        data.extend_from_slice(&Sha256::digest(&data));
        let path = dir.path().join("snap.db");
        std::fs::write(&path, &data).unwrap();
        let held = Snapshot::open(&path, None).unwrap();
        let scanned = Snapshot::scan(&path, None).unwrap();
        assert_eq!(scanned.integrity, Integrity::HashMatches);
        assert!(scanned.entries.iter().all(|e| e.value.is_empty()));
        let mut streamed = Vec::new();
        let lost = scanned.for_each_value(|e, v| streamed.push((e.key.clone(), v.to_vec()))).unwrap();
        assert!(lost.is_empty());
        assert_eq!(scanned.encodings(), held.encodings());
        streamed.sort();
        let want: Vec<(String, Vec<u8>)> = held.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        assert_eq!(streamed, want);
        // a file that changed under the reader: what is missing is reported, not silently dropped
        std::fs::write(&path, b"").unwrap();
        assert!(scanned.for_each_value(|_, _| {}).is_err());
    }
}
