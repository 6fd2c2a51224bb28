//! Every `.pb` fixture of the Kubernetes API's own serialization tests (testdata/k8s-api, copied from
//! k8s.io/api `testdata/HEAD`) decodes to an object equal to its `.json` twin.
//!
//! The decoder's schema is generated from the same API types (`schema/generate.py`), so every fixture must
//! decode exactly: nothing missing, nothing extra, nothing different.

use std::path::Path;

use eksodus_etcd::decode;
use eksodus_etcd::envelope::{classify, Stored};
use serde_json::Value;

/// Not a stored object: a watch-stream frame, never written to etcd.
const NOT_STORED: &[&str] = &["core.v1.WatchEvent"];

#[test]
fn every_fixture_decodes_to_its_json_twin() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/k8s-api");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".pb"))
        .collect();
    names.sort();
    assert!(names.len() >= 190, "{} fixtures", names.len());
    let mut failures = Vec::new();
    let mut exact = 0;
    for n in &names {
        let stem = n.trim_end_matches(".pb");
        if NOT_STORED.contains(&stem) {
            continue;
        }
        let pb = std::fs::read(dir.join(n)).unwrap();
        let want: Value = serde_json::from_slice(&std::fs::read(dir.join(n.replace(".pb", ".json"))).unwrap()).unwrap();
        let got = match classify(&pb) {
            Ok(Stored::Protobuf { api_version, kind, raw, .. }) => decode::object(&api_version, &kind, raw),
            other => Err(format!("not a protobuf envelope: {other:?}")),
        };
        match got {
            Ok(g) if g == want => exact += 1,
            Ok(g) => {
                let mut d = Vec::new();
                diff(&g, &want, "", &mut d);
                failures.push(format!("{n}: {}", d.iter().take(4).cloned().collect::<Vec<_>>().join("; ")));
            }
            Err(e) => failures.push(format!("{n}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} fail:\n{}", failures.len(), names.len(), failures.join("\n"));
    assert_eq!(exact + NOT_STORED.len(), names.len());
}

fn diff(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()).collect::<std::collections::BTreeSet<_>>() {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(p, q, &format!("{at}.{k}"), out),
                    (Some(p), None) => out.push(format!("{at}.{k} extra {}", short(p))),
                    (None, Some(q)) => out.push(format!("{at}.{k} missing (want {})", short(q))),
                    _ => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, &format!("{at}[{i}]"), out);
            }
        }
        (p, q) if p != q => out.push(format!("{at}: got {} want {}", short(p), short(q))),
        _ => {}
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..60])
    } else {
        s
    }
}
