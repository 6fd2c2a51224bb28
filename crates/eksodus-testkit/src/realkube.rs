//! A real Kubernetes API server for tests: an unmodified `kube-apiserver` with its own etcd, on free loopback
//! ports, in a directory of its own, stopped by PID when dropped (and by its watcher when this process dies).
//!
//! The binary is named by the environment variable [`BINARY_VAR`] (`.ci/run` sets it); etcd is Debian's
//! `etcd` on `PATH` (or [`ETCD_VAR`]). Without the variable, [`RealKube::binary`] is `None` and tests fall back
//! to the fake API server, saying so on stdout.
//!
//! The flags are the ones known to work with Debian's etcd 3.4: a /16 service range (a /24 runs out of
//! ClusterIPs at scale), no endpoint reconciler (there is one server and no kubelet), the `ServiceAccount`
//! admission plugin off (no token controller runs), RBAC, a static bearer token in `system:masters`, and a
//! service-account key pair made with `openssl`. There are no controllers: Deployments get no pods, deleted
//! namespaces stay `Terminating`, Services get no endpoints unless a test writes an EndpointSlice.

use std::collections::HashMap;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::supervise::Supervised;
use crate::Error;

/// Names the `kube-apiserver` binary; unset means "no real API server on this machine".
pub const BINARY_VAR: &str = "EKSODUS_KUBE_APISERVER";
/// Names the `etcd` binary when it is not `etcd` on `PATH`.
pub const ETCD_VAR: &str = "EKSODUS_ETCD";
/// The static bearer token of the `admin` user (group `system:masters`).
pub const TOKEN: &str = "eksodus-test-token";
/// Set to keep instance directories (logs, etcd data) after the test, for debugging.
pub const KEEP_VAR: &str = "EKSODUS_KEEP_KUBE";

/// How long a start may take on a loaded machine before it counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// Settings of one instance.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// An `EncryptionConfiguration` document: the server encrypts what it names at rest with it.
    pub encryption_config: Option<String>,
    /// More `--flag=value` arguments for the API server.
    pub extra_args: Vec<String>,
}

/// A running etcd + kube-apiserver pair.
#[derive(Debug)]
pub struct RealKube {
    dir: PathBuf,
    port: u16,
    etcd_port: u16,
    etcd_peer_port: u16,
    opts: Options,
    etcd: Option<Supervised>,
    kas: Option<Supervised>,
    started: Duration,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

/// Where instance directories live: `eksodus-kube/` in the cargo target directory.
fn base_dir() -> PathBuf {
    crate::moto::target_dir().join("eksodus-kube")
}

/// Removes the directories of instances whose test process is gone (a killed test binary leaves them).
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl RealKube {
    /// The API server binary [`BINARY_VAR`] names, when it exists.
    pub fn binary() -> Option<PathBuf> {
        let p = PathBuf::from(std::env::var_os(BINARY_VAR)?);
        p.is_file().then_some(p)
    }

    /// Whether tests can start real API servers here.
    pub fn available() -> bool {
        Self::binary().is_some()
    }

    fn etcd_binary() -> PathBuf {
        std::env::var_os(ETCD_VAR).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("etcd"))
    }

    /// Starts a fresh instance (an empty etcd) and waits until `/readyz` answers `ok`.
    pub async fn start(opts: Options) -> Result<RealKube, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        if Self::binary().is_none() {
            return Err(Error::Install(format!("{BINARY_VAR} does not name a kube-apiserver binary")));
        }
        let base = base_dir();
        std::fs::create_dir_all(&base).map_err(io(format!("creating {}", base.display())))?;
        sweep_stale(&base);
        let mut last = None;
        for _ in 0..3 {
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            let dir = base.join(format!("{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            let mut k = RealKube {
                dir,
                port: free_port()?,
                etcd_port: free_port()?,
                etcd_peer_port: free_port()?,
                opts: opts.clone(),
                etcd: None,
                kas: None,
                started: Duration::ZERO,
            };
            match k.launch().await {
                Ok(()) => return Ok(k),
                // a port taken between choosing it and binding it: choose again
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// The instance named `slot`, shared by every test of this process (started on first use). Tests on a
    /// shared instance keep to their own namespaces and names.
    pub async fn shared(slot: &str) -> Result<Arc<SharedKube>, Error> {
        static SLOTS: OnceLock<Mutex<HashMap<String, Arc<SharedKube>>>> = OnceLock::new();
        let cell = {
            let mut slots = SLOTS.get_or_init(Default::default).lock().expect("slots");
            slots.entry(slot.to_string()).or_insert_with(|| Arc::new(SharedKube::default())).clone()
        };
        cell.inner.get_or_init(|| async { RealKube::start(Options::default()).await.map_err(|e| e.to_string()) }).await;
        match cell.inner.get() {
            Some(Ok(_)) => Ok(cell),
            Some(Err(e)) => Err(Error::Install(e.clone())),
            None => Err(Error::Install("shared API server not started".into())),
        }
    }

    async fn launch(&mut self) -> Result<(), Error> {
        let start = Instant::now();
        let etcd_dir = self.dir.join("etcd");
        let cert_dir = self.dir.join("certs");
        std::fs::create_dir_all(&cert_dir).map_err(io("creating the cert directory"))?;
        self.write_files(&cert_dir)?;

        let etcd_args: Vec<String> = [
            ("--name", "eksodus-test".to_string()),
            ("--data-dir", etcd_dir.display().to_string()),
            ("--listen-client-urls", self.etcd_endpoint()),
            ("--advertise-client-urls", self.etcd_endpoint()),
            ("--listen-peer-urls", format!("http://127.0.0.1:{}", self.etcd_peer_port)),
            ("--initial-advertise-peer-urls", format!("http://127.0.0.1:{}", self.etcd_peer_port)),
            ("--initial-cluster", format!("eksodus-test=http://127.0.0.1:{}", self.etcd_peer_port)),
            ("--initial-cluster-state", "new".to_string()),
            ("--quota-backend-bytes", "4294967296".to_string()),
            ("--logger", "zap".to_string()),
            ("--log-outputs", "stderr".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
        // no ETCD_* from the environment may leak into this etcd
        let mut etcd = Supervised::start(
            "etcd",
            &Self::etcd_binary(),
            &etcd_args,
            &[("ETCD_DATA_DIR", None), ("ETCD_NAME", None), ("ETCD_INITIAL_CLUSTER", None)],
            &self.dir.join("etcd.log"),
        )?;
        wait_for(&mut etcd, &self.dir.join("etcd.log"), Duration::from_secs(60), || etcd_healthy(self.etcd_port))?;
        self.etcd = Some(etcd);

        let mut args: Vec<String> = [
            ("--etcd-servers", self.etcd_endpoint()),
            ("--service-cluster-ip-range", "10.96.0.0/16".to_string()),
            ("--endpoint-reconciler-type", "none".to_string()),
            ("--disable-admission-plugins", "ServiceAccount".to_string()),
            ("--authorization-mode", "RBAC".to_string()),
            ("--token-auth-file", cert_dir.join("tokens.csv").display().to_string()),
            ("--cert-dir", cert_dir.display().to_string()),
            ("--service-account-issuer", "https://kubernetes.default.svc".to_string()),
            ("--service-account-key-file", cert_dir.join("sa.pub").display().to_string()),
            ("--service-account-signing-key-file", cert_dir.join("sa.key").display().to_string()),
            ("--secure-port", self.port.to_string()),
            ("--bind-address", "127.0.0.1".to_string()),
            ("--advertise-address", "127.0.0.1".to_string()),
            ("--v", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
        if self.opts.encryption_config.is_some() {
            args.push(format!("--encryption-provider-config={}", self.dir.join("encryption.yaml").display()));
        }
        args.extend(self.opts.extra_args.iter().cloned());
        let binary = Self::binary().ok_or_else(|| Error::Install(format!("{BINARY_VAR} is not set")))?;
        let kas_log = self.dir.join("kube-apiserver.log");
        let mut kas = Supervised::start("kube-apiserver", &binary, &args, &[], &kas_log)?;
        let port = self.port;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if !kas.running() {
                let status = kas.exit_status();
                self.stop();
                return Err(Error::Install(format!(
                    "kube-apiserver exited ({status:?}); log tail:\n{}",
                    tail(&kas_log, 30)
                )));
            }
            if readyz(port).await {
                break;
            }
            if Instant::now() >= deadline {
                drop(kas);
                self.stop();
                return Err(Error::Install(format!(
                    "kube-apiserver not ready after {}s; log tail:\n{}",
                    READY_TIMEOUT.as_secs(),
                    tail(&kas_log, 30)
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.kas = Some(kas);
        self.started = start.elapsed();
        Ok(())
    }

    fn write_files(&self, cert_dir: &Path) -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt;
        let key = cert_dir.join("sa.key");
        let out = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048")
            .output()
            .map_err(io("running openssl to make the service-account key (is openssl installed?)"))?;
        if !out.status.success() {
            return Err(Error::Install(format!("openssl genrsa: {}", String::from_utf8_lossy(&out.stderr))));
        }
        let out = Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(cert_dir.join("sa.pub"))
            .output()
            .map_err(io("running openssl rsa"))?;
        if !out.status.success() {
            return Err(Error::Install(format!("openssl rsa: {}", String::from_utf8_lossy(&out.stderr))));
        }
        let tokens = cert_dir.join("tokens.csv");
        std::fs::write(&tokens, format!("{TOKEN},admin,admin,system:masters\n")).map_err(io("writing tokens.csv"))?;
        for f in [&key, &tokens] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).map_err(io("chmod"))?;
        }
        if let Some(enc) = &self.opts.encryption_config {
            std::fs::write(self.dir.join("encryption.yaml"), enc).map_err(io("writing encryption.yaml"))?;
        }
        std::fs::write(self.kubeconfig_path(), self.kubeconfig()).map_err(io("writing the kubeconfig"))?;
        Ok(())
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// A kubeconfig (context `real`, the static admin token, the self-signed certificate not verified).
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.url())
    }

    /// The kubeconfig as a file in the instance directory.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// `http://127.0.0.1:PORT` of its etcd (for `etcdctl snapshot save`).
    pub fn etcd_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_port)
    }

    /// Its etcd's data directory (`member/snap/db` is the bbolt file).
    pub fn etcd_data_dir(&self) -> PathBuf {
        self.dir.join("etcd")
    }

    /// The instance directory (logs, certificates, etcd data).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long the last start took until `/readyz` said `ok`.
    pub fn startup_time(&self) -> Duration {
        self.started
    }

    /// Stops both processes, wipes etcd and starts a fresh server at the same URL: "the cluster was recreated".
    pub async fn recreate(&mut self) -> Result<(), Error> {
        self.stop();
        let _ = std::fs::remove_dir_all(self.etcd_data_dir());
        let _ = std::fs::remove_dir_all(self.dir.join("certs"));
        self.launch().await
    }

    /// Stops the API server, then etcd.
    pub fn stop(&mut self) {
        if let Some(mut k) = self.kas.take() {
            k.stop(Duration::from_secs(10));
        }
        if let Some(mut e) = self.etcd.take() {
            e.stop(Duration::from_secs(10));
        }
    }
}

impl Drop for RealKube {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os(KEEP_VAR).is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A [`RealKube`] shared by the tests of one process ([`RealKube::shared`]).
#[derive(Debug, Default)]
pub struct SharedKube {
    inner: tokio::sync::OnceCell<Result<RealKube, String>>,
}

impl SharedKube {
    /// The running instance.
    pub fn get(&self) -> &RealKube {
        match self.inner.get() {
            Some(Ok(k)) => k,
            _ => panic!("shared API server not started"),
        }
    }
}

/// A kubeconfig for `url` with the test token (context `real`).
pub fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: real\n  cluster:\n    server: {url}\n    insecure-skip-tls-verify: true\nusers:\n- name: admin\n  user:\n    token: {TOKEN}\ncontexts:\n- name: real\n  context:\n    cluster: real\n    user: admin\n    namespace: default\ncurrent-context: real\n"
    )
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn wait_for(p: &mut Supervised, log: &Path, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if !p.running() {
            return Err(Error::Install(format!("{} exited; log tail:\n{}", p.name(), tail(log, 20))));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Install(format!(
                "{} not ready after {}s; log tail:\n{}",
                p.name(),
                timeout.as_secs(),
                tail(log, 20)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// etcd's `/health` over plain HTTP.
fn etcd_healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.contains("\"health\":\"true\"")
}

/// The API server's `/readyz`, with the test token.
async fn readyz(port: u16) -> bool {
    let Ok(client) = client_for(&format!("https://127.0.0.1:{port}")).await else { return false };
    let req = http::Request::get("/readyz").body(Vec::new()).expect("request");
    matches!(
        tokio::time::timeout(Duration::from_secs(5), client.request_text(req)).await,
        Ok(Ok(body)) if body.trim() == "ok"
    )
}

/// A kube client for a real test server at `url` (the test token; the self-signed certificate not verified).
pub async fn client_for(url: &str) -> Result<kube::Client, Error> {
    let kc: kube::config::Kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig(url))
        .map_err(|e| Error::Install(format!("test kubeconfig: {e}")))?;
    let conf = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| Error::Install(format!("test kubeconfig: {e}")))?;
    kube::Client::try_from(conf).map_err(|e| Error::Install(format!("kube client: {e}")))
}

impl RealKube {
    /// A kube client for this instance.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        client_for(&self.url()).await
    }
}
