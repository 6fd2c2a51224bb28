//! Every `.pb` fixture of the Kubernetes API's own serialization tests (testdata/k8s-api, copied from
//! k8s.io/api `testdata/HEAD`) decodes to an object equal to its `.json` twin.
//!
//! Except where the fixtures are newer than the protobuf definitions eksodus's schema is generated from
//! (k8s-pb 0.9.0): [`NEWER_THAN_SCHEMA`] lists those fixtures. For them the test still requires that nothing is
//! decoded wrongly: the output is the expected object minus the fields (or kinds) the schema does not have.

use std::path::Path;

use eksodus_etcd::decode;
use eksodus_etcd::envelope::{classify, Stored};
use serde_json::Value;

/// Fixtures with fields or kinds added to Kubernetes after the protobuf definitions the schema comes from.
const NEWER_THAN_SCHEMA: &[&str] = &[
    "admission.k8s.io.v1.AdmissionReview",
    "admission.k8s.io.v1beta1.AdmissionReview",
    "admissionregistration.k8s.io.v1.MutatingAdmissionPolicy",
    "admissionregistration.k8s.io.v1.MutatingAdmissionPolicyBinding",
    "apps.v1.DaemonSet",
    "apps.v1.Deployment",
    "apps.v1.ReplicaSet",
    "apps.v1.StatefulSet",
    "apps.v1beta1.Deployment",
    "apps.v1beta1.StatefulSet",
    "apps.v1beta2.DaemonSet",
    "apps.v1beta2.Deployment",
    "apps.v1beta2.ReplicaSet",
    "apps.v1beta2.StatefulSet",
    "authentication.k8s.io.v1.TokenRequest",
    "autoscaling.v2.HorizontalPodAutoscaler",
    "batch.v1.CronJob",
    "batch.v1.Job",
    "batch.v1beta1.CronJob",
    "certificates.k8s.io.v1.ClusterTrustBundle",
    "certificates.k8s.io.v1.PodCertificateRequest",
    "certificates.k8s.io.v1beta1.PodCertificateRequest",
    "core.v1.ListOptions",
    "core.v1.Node",
    "core.v1.PersistentVolumeClaim",
    "core.v1.Pod",
    "core.v1.PodTemplate",
    "core.v1.ReplicationController",
    "core.v1.Status",
    "extensions.v1beta1.DaemonSet",
    "extensions.v1beta1.Deployment",
    "extensions.v1beta1.ReplicaSet",
    "lifecycle.k8s.io.v1alpha1.Eviction",
    "lifecycle.k8s.io.v1alpha1.EvictionRequest",
    "resource.k8s.io.v1.DeviceTaintRule",
    "resource.k8s.io.v1.ResourceClaim",
    "resource.k8s.io.v1.ResourceSlice",
    "resource.k8s.io.v1alpha3.ResourcePoolStatusRequest",
    "resource.k8s.io.v1beta1.ResourceClaim",
    "resource.k8s.io.v1beta1.ResourceSlice",
    "resource.k8s.io.v1beta2.DeviceTaintRule",
    "resource.k8s.io.v1beta2.ResourceClaim",
    "resource.k8s.io.v1beta2.ResourceSlice",
    "scheduling.k8s.io.v1alpha3.CompositePodGroup",
    "scheduling.k8s.io.v1alpha3.PodGroup",
    "scheduling.k8s.io.v1alpha3.Workload",
    "scheduling.k8s.io.v1beta1.PodGroup",
    "scheduling.k8s.io.v1beta1.Workload",
    "storage.k8s.io.v1.CSIDriver",
    "storage.k8s.io.v1.CSINode",
    "storage.k8s.io.v1beta1.CSIDriver",
    "storage.k8s.io.v1beta1.CSINode",
    "storagemigration.k8s.io.v1.StorageVersionMigration",
];

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
        let newer = NEWER_THAN_SCHEMA.contains(&stem);
        match got {
            Ok(g) if g == want => {
                exact += 1;
                if newer {
                    failures.push(format!("{n}: decodes exactly now; take it off NEWER_THAN_SCHEMA"));
                }
            }
            Ok(g) => {
                let mut d = Vec::new();
                diff(&g, &want, "", &mut d);
                let wrong: Vec<&String> = d.iter().filter(|x| !x.contains(" missing (want")).collect();
                if !newer || !wrong.is_empty() {
                    failures.push(format!("{n}: {}", d.iter().take(4).cloned().collect::<Vec<_>>().join("; ")));
                }
            }
            Err(e) if newer && e.starts_with("no protobuf message known") => {}
            Err(e) => failures.push(format!("{n}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} fail:\n{}", failures.len(), names.len(), failures.join("\n"));
    assert_eq!(exact + NEWER_THAN_SCHEMA.len() + NOT_STORED.len(), names.len());
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
