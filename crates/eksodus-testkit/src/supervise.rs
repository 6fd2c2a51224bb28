//! Child processes that cannot outlive the test process that started them.
//!
//! A static server (one per test binary) is never dropped, and a killed test binary runs no destructors; a
//! process it started would then keep its ports and data. Each process here is started through `sh`: a small
//! watcher loop is forked in the background and the shell then `exec`s the program, which so keeps the
//! shell's PID and stays this process's direct child. The watcher sends the program SIGTERM (then SIGKILL)
//! by that PID as soon as the parent is gone. Nothing is ever stopped by name.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// The watcher: `sh -c WATCH sh PARENT_PID PROGRAM ARGS...`.
const WATCH: &str = r#"parent=$1; shift
me=$$
( while kill -0 "$parent" 2>/dev/null && kill -0 "$me" 2>/dev/null; do sleep 0.5; done
  if kill -0 "$me" 2>/dev/null; then
    kill -TERM "$me" 2>/dev/null; i=0
    while kill -0 "$me" 2>/dev/null && [ $i -lt 40 ]; do sleep 0.25; i=$((i+1)); done
    kill -KILL "$me" 2>/dev/null
  fi ) </dev/null >/dev/null 2>&1 &
exec "$@""#;

/// A running program, stopped by its PID when dropped.
#[derive(Debug)]
pub struct Supervised {
    child: Child,
    name: String,
}

impl Supervised {
    /// Starts `program` with `args` and the environment changes in `env` (`None` removes the variable), its
    /// output appended to `log`.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, Option<&str>)],
        log: &Path,
    ) -> Result<Self, Error> {
        let io = |what: String| move |e| Error::Io { what, source: e };
        let out =
            File::options().create(true).append(true).open(log).map_err(io(format!("opening {}", log.display())))?;
        let err = out.try_clone().map_err(io(format!("opening {}", log.display())))?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(WATCH).arg("sh").arg(std::process::id().to_string()).arg(program).args(args);
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(io(format!("starting {name} ({})", program.display())))?;
        Ok(Supervised { child, name: name.to_string() })
    }

    /// The program's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running (an exit is reaped here).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How it exited, if it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILL; returns once the process is gone.
    pub fn stop(&mut self, grace: Duration) {
        if !self.running() {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}
