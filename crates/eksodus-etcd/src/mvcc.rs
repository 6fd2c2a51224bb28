//! etcd's multi-version store inside bbolt: the `key` bucket maps revisions (8-byte big-endian main revision,
//! `_`, 8-byte big-endian sub revision, and a trailing `t` for a tombstone) to `mvccpb.KeyValue` messages
//! (`key` 1, `create_revision` 2, `mod_revision` 3, `version` 4, `value` 5, `lease` 6); the `meta` bucket holds
//! the consistent index and the compaction revisions.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bolt::Damage;
use crate::pb::{self, Wire};

/// A revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Revision {
    /// Main revision (one per transaction).
    pub main: i64,
    /// Sub revision (one per change within it).
    pub sub: i64,
}

/// Parses a `key`-bucket key: the revision, and whether it is a tombstone.
pub fn parse_revision(k: &[u8]) -> Option<(Revision, bool)> {
    if k.len() < 17 || k[8] != b'_' {
        return None;
    }
    let main = i64::from_be_bytes(k[0..8].try_into().ok()?);
    let sub = i64::from_be_bytes(k[9..17].try_into().ok()?);
    let tomb = match k.len() {
        17 => false,
        18 if k[17] == b't' => true,
        _ => return None,
    };
    Some((Revision { main, sub }, tomb))
}

/// A revision as a `key`-bucket key.
pub fn revision_key(r: Revision, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    k.extend_from_slice(&r.main.to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&r.sub.to_be_bytes());
    if tombstone {
        k.push(b't');
    }
    k
}

/// One stored version of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// The etcd key (`/registry/configmaps/ns/name`).
    pub key: Vec<u8>,
    /// Revision that created the key (since its last deletion).
    pub create_revision: i64,
    /// Revision of this version.
    pub mod_revision: i64,
    /// Version counter of the key.
    pub version: i64,
    /// The stored value.
    #[serde(skip)]
    pub value: Vec<u8>,
    /// Lease ID, 0 for none.
    pub lease: i64,
}

/// Decodes a `mvccpb.KeyValue`.
pub fn decode_kv(b: &[u8]) -> Result<KeyValue, String> {
    decode_kv_with(b, true)
}

/// Decodes a `mvccpb.KeyValue`, leaving `value` empty unless `with_value`.
pub fn decode_kv_with(b: &[u8], with_value: bool) -> Result<KeyValue, String> {
    let mut kv = KeyValue { key: vec![], create_revision: 0, mod_revision: 0, version: 0, value: vec![], lease: 0 };
    for (n, w) in pb::fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => kv.key = x.to_vec(),
            (2, Wire::Varint(x)) => kv.create_revision = x as i64,
            (3, Wire::Varint(x)) => kv.mod_revision = x as i64,
            (4, Wire::Varint(x)) => kv.version = x as i64,
            (5, Wire::Bytes(x)) if with_value => kv.value = x.to_vec(),
            (6, Wire::Varint(x)) => kv.lease = x as i64,
            _ => {}
        }
    }
    if kv.key.is_empty() {
        return Err("KeyValue without a key".into());
    }
    Ok(kv)
}

/// The `value` field of a `mvccpb.KeyValue`, without copying it (`None` when the message does not parse).
pub fn kv_value(b: &[u8]) -> Option<&[u8]> {
    let mut out: &[u8] = &[];
    for (n, w) in pb::fields(b).ok()? {
        if let (5, Wire::Bytes(x)) = (n, w) {
            out = x;
        }
    }
    Some(out)
}

/// Encodes a `mvccpb.KeyValue` (tests and tools).
pub fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let mut b = Vec::new();
    pb::put_bytes(&mut b, 1, &kv.key);
    for (n, v) in [(2, kv.create_revision), (3, kv.mod_revision), (4, kv.version)] {
        if v != 0 {
            pb::put_uint(&mut b, n, v as u64);
        }
    }
    if !kv.value.is_empty() {
        pb::put_bytes(&mut b, 5, &kv.value);
    }
    if kv.lease != 0 {
        pb::put_uint(&mut b, 6, kv.lease as u64);
    }
    b
}

/// What the `meta` bucket says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetaInfo {
    /// Raft index of the last applied entry.
    pub consistent_index: Option<u64>,
    /// Raft term.
    pub term: Option<u64>,
    /// Compacted up to this main revision.
    pub finished_compact: Option<i64>,
    /// A compaction was scheduled at this main revision.
    pub scheduled_compact: Option<i64>,
}

/// Reads the `meta` bucket's entries.
pub fn meta_info(items: &[(Vec<u8>, Vec<u8>)]) -> MetaInfo {
    let mut m = MetaInfo::default();
    for (k, v) in items {
        let be = |v: &[u8]| v.get(0..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
        match k.as_slice() {
            b"consistent_index" => m.consistent_index = be(v),
            b"term" => m.term = be(v),
            b"finishedCompactRev" => m.finished_compact = parse_revision(v).map(|r| r.0.main),
            b"scheduledCompactRev" => m.scheduled_compact = parse_revision(v).map(|r| r.0.main),
            _ => {}
        }
    }
    m
}

/// The state of every key at a revision: for each key, its latest version at or below `at` unless that is a
/// deletion.
#[derive(Debug, Default)]
pub struct State {
    /// Live keys, the `key`-bucket revision of their version, and the version.
    pub keys: BTreeMap<Vec<u8>, (Revision, KeyValue)>,
    /// Lowest and highest main revision seen.
    pub revisions: Option<(i64, i64)>,
    /// Entries that could not be read.
    pub damage: Vec<Damage>,
}

/// The state at a revision, built one `key`-bucket entry at a time in any order (a damaged branch can reorder
/// what is read): for each key the entry with the highest revision at or below `at` wins. Only the winners'
/// values are held, and none at all by a fold [`without_values`](Fold::without_values).
#[derive(Debug, Default)]
pub struct Fold {
    at: Option<i64>,
    skip_values: bool,
    keys: std::collections::HashMap<Vec<u8>, (Revision, Option<KeyValue>)>,
    revisions: Option<(i64, i64)>,
    damage: Vec<Damage>,
}

impl Fold {
    /// A fold for the state at `at` (`None`: the newest).
    pub fn new(at: Option<i64>) -> Self {
        Fold { at, ..Default::default() }
    }

    /// A fold that keeps revisions and metadata only: the values are read again later (see
    /// [`crate::Snapshot::for_each_value`]), so memory does not grow with their size.
    pub fn without_values(at: Option<i64>) -> Self {
        Fold { at, skip_values: true, ..Default::default() }
    }

    /// Takes one entry.
    pub fn push(&mut self, k: &[u8], v: &[u8]) {
        let Some((rev, tomb)) = parse_revision(k) else {
            self.damage.push(Damage { page: None, key: Some(hex(k)), reason: "not a revision key".into() });
            return;
        };
        self.revisions = Some(match self.revisions {
            None => (rev.main, rev.main),
            Some((lo, hi)) => (lo.min(rev.main), hi.max(rev.main)),
        });
        if self.at.is_some_and(|a| rev.main > a) {
            return;
        }
        let kv = match decode_kv_with(v, !self.skip_values) {
            Ok(kv) => kv,
            Err(e) => {
                self.damage.push(Damage {
                    page: None,
                    key: Some(format!("revision {}/{}", rev.main, rev.sub)),
                    reason: format!("KeyValue: {e}"),
                });
                return;
            }
        };
        let newer = self.keys.get(&kv.key).is_none_or(|(r, _)| rev > *r);
        if newer {
            let key = kv.key.clone();
            self.keys.insert(key, (rev, (!tomb).then_some(kv)));
        }
    }

    /// The state.
    pub fn finish(self) -> State {
        let keys = self.keys.into_iter().filter_map(|(k, (r, kv))| kv.map(|kv| (k, (r, kv)))).collect();
        State { keys, revisions: self.revisions, damage: self.damage }
    }
}

/// Folds `key`-bucket entries into the state at `at` (`None`: the newest).
pub fn state<'a>(entries: impl IntoIterator<Item = (&'a [u8], &'a [u8])>, at: Option<i64>) -> State {
    let mut fold = Fold::new(at);
    for (k, v) in entries {
        fold.push(k, v);
    }
    fold.finish()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, rev: i64, value: &str) -> KeyValue {
        KeyValue { key: key.into(), create_revision: 2, mod_revision: rev, version: 1, value: value.into(), lease: 0 }
    }

    #[test]
    fn revisions_and_tombstones() {
        let r = Revision { main: 5, sub: 1 };
        assert_eq!(parse_revision(&revision_key(r, true)), Some((r, true)));
        assert_eq!(parse_revision(&revision_key(r, false)), Some((r, false)));
        assert_eq!(parse_revision(b"short"), None);
        let entries = [
            (revision_key(Revision { main: 2, sub: 0 }, false), encode_kv(&kv("/a", 2, "1"))),
            (revision_key(Revision { main: 3, sub: 0 }, false), encode_kv(&kv("/b", 3, "x"))),
            (revision_key(Revision { main: 4, sub: 0 }, false), encode_kv(&kv("/a", 4, "2"))),
            (
                revision_key(Revision { main: 5, sub: 0 }, true),
                encode_kv(&KeyValue {
                    key: "/b".into(),
                    create_revision: 0,
                    mod_revision: 5,
                    version: 0,
                    value: vec![],
                    lease: 0,
                }),
            ),
        ];
        let it = || entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
        let now = state(it(), None);
        assert_eq!(now.keys.len(), 1);
        assert_eq!(now.keys[b"/a".as_slice()].1.value, b"2");
        assert_eq!(now.revisions, Some((2, 5)));
        let then = state(it(), Some(3));
        assert_eq!(then.keys[b"/a".as_slice()].1.value, b"1");
        assert_eq!(then.keys[b"/b".as_slice()].1.value, b"x");
    }
}
