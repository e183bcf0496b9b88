//! A real Learning Record Store for the analytics tests: Ralph (PyPI
//! `ralph-malph`, installed by `deploy/install.sh` in `.tools/venv-ralph`),
//! its file backend set to append (`tests/lrs/ralph_lrs.py` says why), HTTP
//! basic auth, on a free loopback port; killed with the value.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::process::Proc;
use crate::{free_port, wait_until, workspace_root};

pub const USERNAME: &str = "classroom-lrs";
pub const PASSWORD: &str = "lrs-test-password";

pub struct Lrs {
    pub proc: Proc,
    /// The xAPI endpoint (`…/xAPI`; statements at `{endpoint}/statements`).
    pub endpoint: String,
    http: reqwest::Client,
}

impl Lrs {
    pub async fn start(dir: &Path) -> anyhow::Result<Lrs> {
        let venv = workspace_root().join(".tools/venv-ralph/bin");
        let dir = dir.join("lrs");
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let auth = dir.join("auth.json");
        let env = [
            ("RALPH_APP_DIR", dir.display().to_string()),
            ("RALPH_AUTH_FILE", auth.display().to_string()),
            ("RALPH_RUNSERVER_BACKEND", "fs".to_owned()),
            (
                "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH",
                data.display().to_string(),
            ),
        ];
        // the account core sends with (all scopes; the agent the LRS names
        // as the statements' authority)
        let out = tokio::process::Command::new(venv.join("ralph"))
            .args([
                "auth",
                "-u",
                USERNAME,
                "-p",
                PASSWORD,
                "-s",
                "all",
                "-M",
                "mailto:lrs@example.com",
                "-w",
            ])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .await?;
        anyhow::ensure!(
            out.status.success(),
            "ralph auth: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let proc = Proc::spawn(
            "ralph",
            &venv.join("python"),
            &[
                workspace_root()
                    .join("tests/lrs/ralph_lrs.py")
                    .display()
                    .to_string(),
                "127.0.0.1".into(),
                port.to_string(),
            ],
            &env,
            dir.join("ralph.log"),
        )?;
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        wait_until("ralph answers", Duration::from_secs(60), || {
            let http = http.clone();
            let url = format!("{base}/__heartbeat__");
            async move {
                let r = http.get(url).send().await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await?;
        Ok(Lrs {
            proc,
            endpoint: format!("{base}/xAPI"),
            http,
        })
    }

    /// Every statement the LRS holds.
    pub async fn statements(&self) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut url = format!("{}/statements?limit=500", self.endpoint);
        loop {
            let v: Value = self
                .http
                .get(&url)
                .basic_auth(USERNAME, Some(PASSWORD))
                .header("X-Experience-API-Version", "1.0.3")
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            out.extend(v["statements"].as_array().cloned().unwrap_or_default());
            match v["more"].as_str().filter(|m| !m.is_empty()) {
                Some(more) => {
                    let origin = self.endpoint.trim_end_matches("/xAPI");
                    url = if more.starts_with("http") {
                        more.to_owned()
                    } else {
                        format!("{origin}{more}")
                    };
                }
                None => break,
            }
        }
        Ok(out)
    }

    pub async fn stop(&mut self) {
        self.proc.kill().await;
    }
}
