//! cargo-fuzz entry of the `pb_decode` target ([`eksodus_fuzzing::pb_decode`]): any input, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eksodus_fuzzing::pb_decode(data));
