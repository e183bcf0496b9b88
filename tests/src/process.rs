//! Child processes that die with their owner (by their own pid).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `bin` with `args` and `env`, stdout+stderr to `log`.
    pub fn spawn(
        name: &str,
        bin: &Path,
        args: &[String],
        env: &[(String, String)],
        log: PathBuf,
    ) -> anyhow::Result<Proc> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("spawning {} ({}): {e}", name, bin.display()))?;
        Ok(Proc {
            name: name.to_owned(),
            child: Some(child),
            log,
        })
    }

    /// Takes charge of a child spawned elsewhere (e.g. with its stdout
    /// going to a file of its own).
    pub fn adopt(name: &str, child: Child, log: PathBuf) -> Proc {
        Proc {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// SIGKILL, like a crash, and reap it.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }

    /// SIGTERM and wait for a clean exit (then SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                // SIGTERM by pid through kill(1), to avoid a libc dependency.
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
            match tokio::time::timeout(std::time::Duration::from_secs(10), c.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    let _ = c.kill().await;
                    let _ = c.wait().await;
                }
            }
        }
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last lines of the process's log, for failure messages.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.start_kill();
        }
    }
}
