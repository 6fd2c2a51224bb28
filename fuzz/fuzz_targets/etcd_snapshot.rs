//! Any bytes as an etcd snapshot, and as a stored value: the reader and the decoders must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = eksodus_etcd::Snapshot::from_bytes(std::path::Path::new("fuzz"), data, None) {
        for e in &s.entries {
            let _ = eksodus_etcd::recover(e);
        }
    }
    let entry = eksodus_etcd::Entry { key: "/registry/configmaps/a/b".into(), resource: None, create_revision: 0, mod_revision: 0, value: data.to_vec() };
    let _ = eksodus_etcd::recover(&entry);
    if data.len() > 4 {
        let _ = eksodus_etcd::decode::object("v1", "Pod", &data[4..]);
    }
});
