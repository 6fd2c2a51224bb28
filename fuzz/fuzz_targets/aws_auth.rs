//! Fuzzes the aws-auth parser: arbitrary bytes, split into the three data keys, must never panic, and
//! whatever parses must render and parse back to the same mappings.
#![no_main]

use std::collections::BTreeMap;

use eksodus_access::awsauth::{AwsAuth, Edit, Mapping};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\u{0}');
    let mut d = BTreeMap::new();
    for key in ["mapRoles", "mapUsers", "mapAccounts"] {
        if let Some(p) = parts.next() {
            d.insert(key.to_string(), p.to_string());
        }
    }
    if let Ok(mut a) = AwsAuth::parse(&d) {
        assert_eq!(a.render(), d, "an untouched ConfigMap must render byte-identical");
        a.apply(&[Edit::Upsert(Mapping::role("arn:aws:iam::111122223333:role/fuzz", "fuzz", &["g"]))]);
        let again = AwsAuth::parse(&a.render()).expect("what eksodus renders parses");
        assert_eq!(again.mappings.len(), a.mappings.len());
    }
});
