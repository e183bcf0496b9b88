//! Real stream receivers for the fan-out tests, started and ended by the
//! test: Debian's nginx with `libnginx-mod-rtmp` (an RTMP server that
//! records every stream it receives as FLV, one file per connection) and
//! `srt-live-transmit` as an SRT listener writing what it receives to a
//! file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::Proc;
use crate::wait_until;

const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

pub struct RtmpServer {
    pub port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl RtmpServer {
    /// Starts nginx-rtmp on 127.0.0.1:`port`, application `live`,
    /// recording into `dir/rec`.
    pub async fn start(dir: &Path, port: u16) -> anyhow::Result<RtmpServer> {
        let rec = dir.join("rec");
        std::fs::create_dir_all(&rec)?;
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\n\
             error_log {dir}/error.log info;\nload_module {RTMP_MODULE};\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{\n  server {{\n    listen 127.0.0.1:{port};\n    chunk_size 4096;\n\
             application live {{\n      live on;\n      record all;\n      record_path {rec};\n\
             record_unique on;\n    }}\n  }}\n}}\n",
            dir = dir.display(),
            rec = rec.display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let mut s = RtmpServer {
            port,
            dir: dir.to_path_buf(),
            proc: None,
        };
        s.restart().await?;
        Ok(s)
    }

    /// (Re)starts the server on its port and waits until it accepts.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let dir = self.dir.display().to_string();
        let proc = Proc::spawn(
            "nginx-rtmp",
            Path::new("/usr/sbin/nginx"),
            &[
                "-c".into(),
                format!("{dir}/nginx.conf"),
                "-p".into(),
                dir.clone(),
                "-e".into(),
                format!("{dir}/error.log"),
            ],
            &[],
            self.dir.join("nginx.out"),
        )?;
        self.proc = Some(proc);
        let port = self.port;
        wait_until(
            "nginx-rtmp accepting",
            Duration::from_secs(10),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await
    }

    /// SIGKILL, like a crash.
    pub async fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill().await;
        }
    }

    /// The FLV files recorded for a stream name, oldest first (one per
    /// connection).
    pub fn recordings(&self, stream: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("rec"))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n.starts_with(&format!("{stream}-")) && n.ends_with(".flv")
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// The server's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// An SRT listener that writes the MPEG-TS it receives to a file.
pub struct SrtListener {
    pub port: u16,
    pub file: PathBuf,
    proc: Option<Proc>,
}

impl SrtListener {
    pub fn start(dir: &Path, port: u16) -> anyhow::Result<SrtListener> {
        let file = dir.join("srt.ts");
        let log = dir.join("srt.log");
        // stdout is the stream itself
        let child = tokio::process::Command::new("/usr/bin/srt-live-transmit")
            .args([
                "-q".to_string(),
                format!("srt://127.0.0.1:{port}?mode=listener"),
                "file://con".to_string(),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&file)?)
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()?;
        Ok(SrtListener {
            port,
            file,
            proc: Some(Proc::adopt("srt-live-transmit", child, log)),
        })
    }

    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop().await;
        }
    }
}
