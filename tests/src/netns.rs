//! A campus on another network, made by the test: a network namespace for
//! the edge box, joined to the test's own namespace (core, hub, S3) by a
//! veth "WAN" that the test can cut, and by a veth "LAN" that stands for the
//! campus network the students are on (it stays up when the WAN goes down).
//! Only the links the test creates carry traffic; the namespace and its links
//! are deleted when the [`Site`] is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One campus namespace and its two links.
pub struct Site {
    /// The namespace's name (`ip netns`).
    pub ns: String,
    /// Core's side of the WAN (core, the hub and S3 listen here).
    pub wan_core: String,
    /// The edge's address on the WAN.
    pub wan_edge: String,
    /// The edge's address on the campus LAN (students reach it here).
    pub lan_edge: String,
    wan_edge_if: String,
    root_ifs: Vec<String>,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

impl Site {
    /// Makes the namespace, both links and their addresses. Needs
    /// CAP_NET_ADMIN (the CI machine runs tests as root).
    pub fn create() -> anyhow::Result<Site> {
        let k = std::process::id() % 250 + 1;
        let ns = format!("classroom-site-{k}");
        let (wr, we) = (format!("clw{k}r"), format!("clw{k}e"));
        let (lr, le) = (format!("cll{k}r"), format!("cll{k}e"));
        // leftovers of a run that was killed before it could clean up
        let _ = ip(&["netns", "del", &ns]);
        let _ = ip(&["link", "del", &wr]);
        let _ = ip(&["link", "del", &lr]);
        let site = Site {
            ns: ns.clone(),
            wan_core: format!("10.213.{k}.1"),
            wan_edge: format!("10.213.{k}.2"),
            lan_edge: format!("10.214.{k}.2"),
            wan_edge_if: we.clone(),
            root_ifs: vec![wr.clone(), lr.clone()],
        };
        ip(&["netns", "add", &ns])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        for (root_if, edge_if, net) in [(&wr, &we, "10.213"), (&lr, &le, "10.214")] {
            ip(&[
                "link", "add", root_if, "type", "veth", "peer", "name", edge_if, "netns", &ns,
            ])?;
            ip(&["addr", "add", &format!("{net}.{k}.1/30"), "dev", root_if])?;
            ip(&["link", "set", root_if, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{net}.{k}.2/30"),
                "dev",
                edge_if,
            ])?;
            ip(&["-n", &ns, "link", "set", edge_if, "up"])?;
        }
        Ok(site)
    }

    /// Cuts the WAN (the edge's end goes down: no packet crosses).
    pub fn cut_wan(&self) -> anyhow::Result<()> {
        ip(&["-n", &self.ns, "link", "set", &self.wan_edge_if, "down"])
    }

    /// Brings the WAN back.
    pub fn restore_wan(&self) -> anyhow::Result<()> {
        ip(&["-n", &self.ns, "link", "set", &self.wan_edge_if, "up"])
    }

    /// Runs `f` on a thread of its own that has entered the namespace, on a
    /// runtime of that thread: every socket `f` opens is the campus box's
    /// (a NATS client on the box's leaf, say).
    pub fn run_inside<F, Fut, T>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future<Output = T>,
        T: Send,
    {
        use std::os::fd::AsRawFd;
        let path = format!("/var/run/netns/{}", self.ns);
        std::thread::scope(|scope| {
            scope
                .spawn(|| -> anyhow::Result<T> {
                    let ns = std::fs::File::open(&path)?;
                    // SAFETY: setns on this thread only, with a valid fd of a
                    // network namespace; the thread ends when `f` returns
                    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                    anyhow::ensure!(rc == 0, "setns: {}", std::io::Error::last_os_error());
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    Ok(rt.block_on(f()))
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the thread inside {} panicked", self.ns))?
        })
    }

    /// `bin args…` run inside the namespace.
    pub fn wrap(&self, bin: &Path, args: &[String]) -> (PathBuf, Vec<String>) {
        wrap_in(Some(&self.ns), bin, args)
    }
}

/// The program and arguments that run `bin args…` in namespace `ns` (or
/// here, for None): `ip netns exec` execs, so the child's pid is the
/// program's and the test ends it by that id.
pub fn wrap_in(ns: Option<&str>, bin: &Path, args: &[String]) -> (PathBuf, Vec<String>) {
    let Some(ns) = ns else {
        return (bin.to_path_buf(), args.to_vec());
    };
    let mut all = vec![
        "netns".to_owned(),
        "exec".to_owned(),
        ns.to_owned(),
        bin.display().to_string(),
    ];
    all.extend(args.iter().cloned());
    ("ip".into(), all)
}

/// Whether something listens on `port` on the loopback of namespace `ns`
/// (or here).
pub async fn listening_in(ns: Option<&str>, port: u16) -> bool {
    let Some(ns) = ns else {
        return tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
    };
    tokio::process::Command::new("ip")
        .args(["netns", "exec", ns, "bash", "-c"])
        .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{port}"))
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
        for i in &self.root_ifs {
            let _ = ip(&["link", "del", i]);
        }
    }
}
