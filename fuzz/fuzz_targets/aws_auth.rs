//! cargo-fuzz entry of the `aws_auth` target ([`eksodus_fuzzing::aws_auth`]): any input, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eksodus_fuzzing::aws_auth(data));
