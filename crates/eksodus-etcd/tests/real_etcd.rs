//! Real snapshots: a Debian etcd (`etcd-server`, `etcd-client`; `.ci/run` installs them) is started on loopback,
//! the Kubernetes API's own protobuf fixtures are written under the real key layout, updated, deleted and
//! compacted, `etcdctl snapshot save` takes a snapshot, and the reader must give back exactly what etcd holds.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eksodus_etcd::envelope::{classify, Stored};
use eksodus_etcd::{Integrity, Snapshot};
use serde_json::{json, Value};

fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

struct Etcd {
    child: Child,
    client: u16,
    _dir: tempfile::TempDir,
    data: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Etcd {
    fn start() -> Etcd {
        let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("etcd is not installed: `apt-get install etcd-server etcd-client` (.ci/run does this)");
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let data = dir.path().join("data");
        let child = Command::new(bin)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{client}")])
            .args(["--advertise-client-urls", &format!("http://127.0.0.1:{client}")])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-cluster", &format!("default=http://127.0.0.1:{peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let e = Etcd { child, client, _dir: dir, data };
        let start = Instant::now();
        while e.call("/v3/kv/range", json!({"key": b64(b"x")})).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "etcd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        e
    }

    /// One call to etcd's JSON gateway (binary-safe: keys and values are base64).
    fn call(&self, path: &str, body: Value) -> Result<Value, String> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.client)).map_err(|e| e.to_string())?;
        let b = body.to_string();
        write!(s, "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len())
            .map_err(|e| e.to_string())?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
        if !resp.starts_with("HTTP/1.1 200") {
            return Err(resp.lines().next().unwrap_or("").to_string());
        }
        let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
        // chunked or not, the JSON object is the part between the outer braces
        let (a, z) = (body.find('{').unwrap_or(0), body.rfind('}').unwrap_or(0));
        serde_json::from_str(&body[a..=z]).map_err(|e| e.to_string())
    }

    fn put(&self, key: &str, value: &[u8]) -> i64 {
        let r = self.call("/v3/kv/put", json!({"key": b64(key.as_bytes()), "value": b64(value)})).unwrap();
        r["header"]["revision"].as_str().unwrap().parse().unwrap()
    }

    fn delete(&self, key: &str) -> i64 {
        let r = self.call("/v3/kv/deleterange", json!({"key": b64(key.as_bytes())})).unwrap();
        r["header"]["revision"].as_str().unwrap().parse().unwrap()
    }

    fn compact(&self, rev: i64) {
        self.call("/v3/kv/compaction", json!({"revision": rev.to_string(), "physical": true})).unwrap();
    }

    fn snapshot(&self, to: &Path) {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &format!("http://127.0.0.1:{}", self.client), "snapshot", "save"])
            .arg(to)
            .output()
            .expect("etcdctl (apt-get install etcd-client)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/k8s-api").join(name)).unwrap()
}

#[test]
fn snapshots_read_back_exactly() {
    let etcd = Etcd::start();
    let cm = fixture("core.v1.ConfigMap.pb");
    let secret = fixture("core.v1.Secret.pb");
    let dep = fixture("apps.v1.Deployment.pb");
    let ns = fixture("core.v1.Namespace.pb");
    let r_ns = etcd.put("/registry/namespaces/shop", &ns);
    // a Secret encrypted at rest with aesgcm, bound to its etcd key
    let key: Vec<u8> = (0u8..32).collect();
    let enc =
        eksodus_etcd::encryption::encrypt("aesgcm", "k1", &key, &[5u8; 12], &secret, b"/registry/secrets/shop/api")
            .unwrap();
    etcd.put("/registry/secrets/shop/api", &enc);
    let r_cm1 = etcd.put("/registry/configmaps/shop/web", &cm);
    // the fixture under the key the API server would give it (the others are under keys of other names)
    etcd.put("/registry/configmaps/namespaceValue/nameValue", &cm);
    etcd.put("/registry/secrets/shop/db", &secret);
    etcd.put("/registry/deployments/shop/web", &dep);
    etcd.put(
        "/registry/example.com/widgets/shop/w",
        br#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"shop"}}"#,
    );
    // many objects, so the key bucket spans branch pages
    for i in 0..400 {
        etcd.put(&format!("/registry/configmaps/bulk/cm-{i:04}"), &cm);
    }
    // the same object written again: an update, so a new mod revision and the old create revision
    let cm2 = cm.clone();
    let r_cm2 = etcd.put("/registry/configmaps/shop/web", &cm2);
    assert!(r_cm2 > r_cm1);
    let r_del = etcd.delete("/registry/secrets/shop/db");
    for i in 0..50 {
        etcd.delete(&format!("/registry/configmaps/bulk/cm-{i:04}"));
    }
    etcd.compact(r_del);
    let last = etcd.put("/registry/configmaps/shop/after-compaction", b"{\"kind\":\"ConfigMap\"}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.db");
    etcd.snapshot(&file);
    let s = Snapshot::open(&file, None).unwrap();
    assert_eq!(s.integrity, Integrity::HashMatches);
    assert!(s.damage.is_empty(), "{:?}", s.damage);
    assert_eq!(s.revisions.unwrap().1, last);
    assert!(
        s.info.finished_compact.is_some_and(|c| c == r_del) || s.info.scheduled_compact == Some(r_del),
        "{:?}",
        s.info
    );
    let get = |k: &str| s.entries.iter().find(|e| e.key == k);
    assert!(get("/registry/secrets/shop/db").is_none(), "deleted keys are gone");
    assert_eq!(s.entries.iter().filter(|e| e.key.starts_with("/registry/configmaps/bulk/")).count(), 350);
    let web = get("/registry/configmaps/shop/web").unwrap();
    assert_eq!(web.value, cm2);
    assert_eq!((web.create_revision, web.mod_revision), (r_cm1, r_cm2));
    assert_eq!(get("/registry/namespaces/shop").unwrap().mod_revision, r_ns);
    assert_eq!(get("/registry/deployments/shop/web").unwrap().value, dep);
    match classify(&web.value).unwrap() {
        Stored::Protobuf { api_version, kind, .. } => {
            assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "ConfigMap"))
        }
        other => panic!("{other:?}"),
    }
    // decoded to the object the API server would serve: the fixture's JSON twin, at its etcd revision
    let mut want: Value = serde_json::from_slice(&fixture("core.v1.ConfigMap.json")).unwrap();
    want["metadata"]["resourceVersion"] = json!(r_cm2.to_string());
    assert_eq!(eksodus_etcd::recover(web), eksodus_etcd::Recovered::Object(want));
    let api = get("/registry/secrets/shop/api").unwrap();
    assert!(
        matches!(eksodus_etcd::recover(api), eksodus_etcd::Recovered::Lost { ref reason, .. } if reason.contains("EncryptionConfiguration"))
    );
    let mut keys = eksodus_etcd::encryption::Keys::default();
    keys.insert("aesgcm", "k1", key.clone());
    let mut want_secret: Value = serde_json::from_slice(&fixture("core.v1.Secret.json")).unwrap();
    want_secret["metadata"]["resourceVersion"] = json!(api.mod_revision.to_string());
    assert_eq!(eksodus_etcd::recover_with(api, Some(&keys)), eksodus_etcd::Recovered::Object(want_secret));
    let w = get("/registry/example.com/widgets/shop/w").unwrap();
    match eksodus_etcd::recover(w) {
        eksodus_etcd::Recovered::Object(v) => assert_eq!(v["kind"], "Widget"),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.resource.as_ref().unwrap().resource, "widgets");
    assert_eq!(s.counts()["configmaps"], 353);
    assert_eq!(s.encodings()["encrypted:aesgcm"], 1);
    // the same through every etcdctl-visible key: etcd and the reader agree on the whole key space
    let listed =
        etcd.call("/v3/kv/range", json!({"key": b64(b"/"), "range_end": b64(b"0"), "keys_only": true})).unwrap();
    assert_eq!(listed["count"].as_str().unwrap().parse::<usize>().unwrap(), s.entries.len());

    // an older revision (above the compaction) reads as it was
    let old = Snapshot::open(&file, Some(r_del + 60)).unwrap();
    assert!(old.entries.iter().all(|e| e.mod_revision <= r_del + 60));

    // the streaming reader: a scan holds no values, and reading them again gives exactly what `open` held
    let scanned = Snapshot::scan(&file, None).unwrap();
    assert_eq!(scanned.integrity, Integrity::HashMatches);
    assert_eq!(scanned.entries.len(), s.entries.len());
    assert!(scanned.entries.iter().all(|e| e.value.is_empty()));
    let mut streamed = std::collections::BTreeMap::new();
    let lost = scanned
        .for_each_value(|e, v| {
            assert!(streamed.insert(e.key.clone(), v.to_vec()).is_none(), "{} twice", e.key);
        })
        .unwrap();
    assert!(lost.is_empty(), "{lost:?}");
    for e in &s.entries {
        assert_eq!(streamed[&e.key], e.value, "{}", e.key);
    }

    // into a migration bundle while streaming (what `cargo xtask migrate export --from-etcd-snapshot` does):
    // the same bundle as reading everything first, then preparing and writing it
    let keys = std::sync::Arc::new(keys);
    let (read, _) = eksodus_migrate::source::read_etcd(&file, None, Some(&keys)).unwrap();
    // a value without a name is an error of its key; so is every object stored under a key of another name
    let other_names = read.errors.iter().filter(|e| e.reason.contains("but its key is for")).count();
    assert_eq!(other_names, 350 + 4, "{:?}", read.errors); // bulk; shop/web, the secret, deployment, namespace
    assert_eq!(read.errors.len(), other_names + 1, "{:?}", read.errors);
    assert_eq!(read.objects.len(), 2, "the fixture under its own key, and the custom resource");
    let held = tempfile::tempdir().unwrap();
    let prepared = eksodus_migrate::bundle::prepare(read, "etcd", &Default::default(), &Default::default());
    let manifest = eksodus_migrate::bundle::write(held.path(), &prepared).unwrap();
    let out = tempfile::tempdir().unwrap();
    let ex = eksodus_migrate::bundle::Export::new(out.path(), "etcd", Default::default(), Default::default()).unwrap();
    eksodus_migrate::source::stream_etcd(&file, None, Some(keys), &mut |j| ex.push_job(j)).unwrap();
    let done = ex.finish().unwrap();
    assert_eq!(done.manifest, manifest);
    let mut want = prepared.report.errors.clone();
    want.sort_by(|a, b| (&a.at, &a.object).cmp(&(&b.at, &b.object)));
    assert_eq!(done.report.errors, want);
    for name in ["nameValue", "w"] {
        assert!(done.manifest.objects.iter().any(|e| e.name == name), "{name} is in the bundle");
    }
    for e in &manifest.objects {
        let (a, b) =
            (std::fs::read(held.path().join(&e.file)).unwrap(), std::fs::read(out.path().join(&e.file)).unwrap());
        assert_eq!(a, b, "{}", e.file);
    }

    // the data directory reads too (no trailing hash)
    let live = Snapshot::open(&etcd.data, None).unwrap();
    assert_eq!(live.integrity, Integrity::NoHash);
    assert_eq!(live.entries.len(), s.entries.len());

    // a damaged copy: the hash says so, and reading never panics
    let mut bytes = std::fs::read(&file).unwrap();
    let len = bytes.len();
    for i in (8192..len - 32).step_by(4099) {
        bytes[i] ^= 0x5a;
    }
    let d = Snapshot::from_bytes(&file, &bytes, None);
    if let Ok(d) = d {
        assert_eq!(d.integrity, Integrity::HashMismatch);
    }
    let _ = Snapshot::from_bytes(&file, &bytes[..len / 2], None);
}
