//! cargo-fuzz entry of the `eksctl` target ([`eksodus_fuzzing::eksctl`]): any input, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eksodus_fuzzing::eksctl(data));
