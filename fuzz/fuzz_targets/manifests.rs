//! cargo-fuzz entry of the `manifests` target ([`eksodus_fuzzing::manifests`]): any input, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eksodus_fuzzing::manifests(data));
