//! cargo-fuzz entry of the `etcd_snapshot` target ([`eksodus_fuzzing::etcd_snapshot`]): any input, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eksodus_fuzzing::etcd_snapshot(data));
