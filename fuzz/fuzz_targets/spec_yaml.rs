//! cargo-fuzz entry of the `spec_yaml` target ([`eksodus_fuzzing::spec_yaml`]): any input, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eksodus_fuzzing::spec_yaml(data));
