//! The local AWS emulator: moto in server mode, installed into a virtualenv under `target/` when missing.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use crate::Error;

/// The moto release eksodus is tested against (`moto[server]` from PyPI).
pub const MOTO_VERSION: &str = "5.2.5";

const LAUNCHER: &str = include_str!("moto_launcher.py");

/// A running moto server on 127.0.0.1; stopped (by PID) when dropped, and exits by itself when this process
/// goes away.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    port: u16,
}

/// The cargo target directory (`$CARGO_TARGET_DIR`, else the workspace's `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// Where the virtualenv lives: `$EKSODUS_VENV`, else `eksodus-venv` in the cargo target directory.
pub fn venv_dir() -> PathBuf {
    if let Ok(v) = std::env::var("EKSODUS_VENV") {
        return PathBuf::from(v);
    }
    target_dir().join("eksodus-venv")
}

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Installs the pinned moto into the virtualenv unless it is there already. Safe to call from several
/// processes at once (a file lock serialises the install).
pub fn ensure_installed() -> Result<PathBuf, Error> {
    let venv = venv_dir();
    let python = venv_python(&venv);
    if installed_version(&python).as_deref() == Some(MOTO_VERSION) {
        return Ok(python);
    }
    if let Some(parent) = venv.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| Error::Io { what: format!("creating {}", parent.display()), source: e })?;
    }
    let lock_path = venv.with_extension("lock");
    let lock = File::create(&lock_path)
        .map_err(|e| Error::Io { what: format!("creating {}", lock_path.display()), source: e })?;
    lock.lock().map_err(|e| Error::Io { what: "locking the virtualenv".into(), source: e })?;
    if installed_version(&python).as_deref() == Some(MOTO_VERSION) {
        return Ok(python);
    }
    let base = std::env::var("EKSODUS_PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(&base).args(["-m", "venv"]).arg(&venv), "creating the moto virtualenv")?;
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("moto[server]=={MOTO_VERSION}")),
        "installing moto into the virtualenv",
    )?;
    match installed_version(&python) {
        Some(v) if v == MOTO_VERSION => Ok(python),
        other => {
            Err(Error::Install(format!("after pip install, moto reports version {other:?}, expected {MOTO_VERSION}")))
        }
    }
}

fn installed_version(python: &Path) -> Option<String> {
    if !python.exists() {
        return None;
    }
    let out = Command::new(python)
        .args(["-c", "import flask, werkzeug; from importlib.metadata import version; print(version('moto'))"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn run(cmd: &mut Command, what: &str) -> Result<(), Error> {
    let out = cmd.output().map_err(|e| Error::Io { what: what.into(), source: e })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Install(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim())))
    }
}

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::Io { what: "finding a free port".into(), source: e })?;
    Ok(l.local_addr().map_err(|e| Error::Io { what: "finding a free port".into(), source: e })?.port())
}

impl Moto {
    /// Installs moto if needed and starts a fresh server with AWS managed IAM policies loaded.
    pub fn start() -> Result<Moto, Error> {
        let python = ensure_installed()?;
        let script = venv_dir().join("eksodus_moto_launcher.py");
        fs::write(&script, LAUNCHER).map_err(|e| Error::Io { what: "writing the moto launcher".into(), source: e })?;
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            // stderr goes to a file, never to an unread pipe: a full pipe would block moto mid-request
            let log_path = venv_dir().join(format!("moto-{}.log", std::process::id()));
            let log = File::create(&log_path)
                .map_err(|e| Error::Io { what: format!("creating {}", log_path.display()), source: e })?;
            let mut child = Command::new(&python)
                .arg(&script)
                .arg(port.to_string())
                .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(log))
                .spawn()
                .map_err(|e| Error::Io { what: "starting moto".into(), source: e })?;
            let stdout = child.stdout.take().expect("piped stdout");
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            });
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.trim() == "ready" => {
                    let moto = Moto { child, port };
                    moto.get("/moto-api/")?;
                    return Ok(moto);
                }
                other => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let err = fs::read_to_string(&log_path).unwrap_or_default();
                    last = Some(format!("moto did not start ({other:?}): {}", err.trim()));
                }
            }
        }
        Err(Error::Install(last.unwrap_or_default()))
    }

    /// One server per process, started on first use; tests isolate themselves with separate accounts
    /// ([`crate::proxy::FaultConfig::account_id`]) rather than resets, so they can run in parallel.
    pub fn shared() -> Result<&'static Moto, Error> {
        static SHARED: OnceLock<Result<Moto, String>> = OnceLock::new();
        SHARED.get_or_init(|| Moto::start().map_err(|e| e.to_string())).as_ref().map_err(|e| Error::Install(e.clone()))
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Wipes all state in every account and region.
    pub fn reset(&self) -> Result<(), Error> {
        self.request("POST", "/moto-api/reset").map(|_| ())
    }

    fn get(&self, path: &str) -> Result<String, Error> {
        self.request("GET", path)
    }

    fn request(&self, method: &str, path: &str) -> Result<String, Error> {
        let io = |e| Error::Io { what: format!("{method} {path} on moto"), source: e };
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).map_err(io)?;
        s.set_read_timeout(Some(Duration::from_secs(30))).map_err(io)?;
        write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .map_err(io)?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).map_err(io)?;
        if resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200") {
            Ok(resp)
        } else {
            Err(Error::Install(format!("{method} {path} on moto answered: {}", resp.lines().next().unwrap_or(""))))
        }
    }
}

/// The long-lived local emulator that `--local` commands share across processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Daemon {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its process ID.
    pub pid: u32,
}

impl Daemon {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn state_file() -> PathBuf {
        venv_dir().with_file_name("eksodus-local.json")
    }

    fn alive(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, self.port).into(), Duration::from_secs(1))
        else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if write!(s, "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).is_ok() && buf.ends_with(b"200")
    }

    /// The running daemon, if there is one.
    pub fn running() -> Option<Daemon> {
        let d: Daemon = serde_json::from_str(&fs::read_to_string(Self::state_file()).ok()?).ok()?;
        d.alive().then_some(d)
    }

    /// The running daemon, or a new one (installing moto first if needed).
    pub fn ensure() -> Result<Daemon, Error> {
        if let Some(d) = Self::running() {
            return Ok(d);
        }
        let python = ensure_installed()?;
        let script = venv_dir().join("eksodus_moto_launcher.py");
        fs::write(&script, LAUNCHER).map_err(|e| Error::Io { what: "writing the moto launcher".into(), source: e })?;
        let port = free_port()?;
        let log_path = venv_dir().join("moto-daemon.log");
        let log = File::create(&log_path)
            .map_err(|e| Error::Io { what: format!("creating {}", log_path.display()), source: e })?;
        use std::os::unix::process::CommandExt;
        let child = Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg("--daemon")
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Io { what: "starting the moto daemon".into(), source: e })?;
        let d = Daemon { port, pid: child.id() };
        for _ in 0..300 {
            if d.alive() {
                fs::write(Self::state_file(), serde_json::to_string(&d).expect("serializable"))
                    .map_err(|e| Error::Io { what: "recording the moto daemon".into(), source: e })?;
                return Ok(d);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::Install(format!(
            "the moto daemon did not answer: {}",
            fs::read_to_string(&log_path).unwrap_or_default().trim()
        )))
    }

    /// Stops the daemon; returns whether one was running.
    pub fn stop() -> Result<bool, Error> {
        let Some(d) = Self::running() else {
            let _ = fs::remove_file(Self::state_file());
            return Ok(false);
        };
        let _ = Command::new("kill").arg(d.pid.to_string()).status();
        let _ = fs::remove_file(Self::state_file());
        Ok(true)
    }
}

/// The fault proxy in front of the [`Daemon`], serving the EKS operations moto lacks to `--local` commands.
/// It runs in a process of its own ([`ProxyDaemon::serve`]), started by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProxyDaemon {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its process ID.
    pub pid: u32,
    /// The moto daemon's port it forwards to.
    pub upstream: u16,
}

impl ProxyDaemon {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn state_file() -> PathBuf {
        venv_dir().with_file_name("eksodus-local-proxy.json")
    }

    /// The running proxy in front of `moto`, if any.
    pub fn running(moto: &Daemon) -> Option<ProxyDaemon> {
        let p: ProxyDaemon = serde_json::from_str(&fs::read_to_string(Self::state_file()).ok()?).ok()?;
        let alive = TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, p.port).into(), Duration::from_secs(1)).is_ok();
        (alive && p.upstream == moto.port).then_some(p)
    }

    /// Serves until the process is killed: a proxy without faults in front of `moto`, recorded in the state
    /// file so later commands find it.
    pub async fn serve(moto: Daemon) -> Result<(), Error> {
        let proxy = crate::proxy::FaultProxy::start(&moto.endpoint(), crate::proxy::FaultConfig::default()).await?;
        let port = proxy.endpoint().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let me = ProxyDaemon { port, pid: std::process::id(), upstream: moto.port };
        fs::write(Self::state_file(), serde_json::to_string(&me).expect("serializable"))
            .map_err(|e| Error::Io { what: "recording the proxy daemon".into(), source: e })?;
        std::future::pending::<()>().await;
        Ok(())
    }

    /// Waits (up to 30 s) for a proxy that `serve` is starting in front of `moto`.
    pub fn wait_for(moto: &Daemon) -> Result<ProxyDaemon, Error> {
        for _ in 0..300 {
            if let Some(p) = Self::running(moto) {
                return Ok(p);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::Install("the local proxy did not start".into()))
    }

    /// Stops the proxy; returns whether one was running.
    pub fn stop() -> bool {
        let Some(p) =
            fs::read_to_string(Self::state_file()).ok().and_then(|t| serde_json::from_str::<ProxyDaemon>(&t).ok())
        else {
            return false;
        };
        let _ = fs::remove_file(Self::state_file());
        Command::new("kill").arg(p.pid.to_string()).status().is_ok_and(|s| s.success())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(venv_dir().join(format!("moto-{}.log", std::process::id())));
    }
}
