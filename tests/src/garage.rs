//! A real S3 server for a stack: Garage (built by `deploy/install.sh` into
//! the cache outside the clone, linked as `.tools/bin/garage`), one node,
//! one bucket, one access key per service, killed with the stack.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::Proc;
use crate::{free_port, wait_until, workspace_root};

pub const BUCKET: &str = "classroom";
pub const REGION: &str = "garage";

pub fn garage_bin() -> PathBuf {
    if let Ok(p) = std::env::var("GARAGE_BIN") {
        return PathBuf::from(p);
    }
    workspace_root().join(".tools/bin/garage")
}

/// An S3 access key Garage knows, with read and write on the bucket.
#[derive(Debug, Clone)]
pub struct S3Key {
    pub id: String,
    pub secret: String,
}

pub struct Garage {
    pub proc: Proc,
    /// `http://host:port` of the S3 API.
    pub endpoint: String,
    config: PathBuf,
}

impl Garage {
    /// Starts a one-node Garage listening on `host`, lays out its storage
    /// and makes the bucket.
    pub async fn start(dir: &Path, host: &str) -> anyhow::Result<Garage> {
        let dir = dir.join("garage");
        std::fs::create_dir_all(&dir)?;
        let (s3, rpc, admin) = (free_port(), free_port(), free_port());
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{secret}\"\n\n\
                 [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"{host}:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\nadmin_token = \"{secret}\"\n",
                meta = dir.join("meta").display(),
                data = dir.join("data").display(),
            ),
        )?;
        let proc = Proc::spawn(
            "garage",
            &garage_bin(),
            &[
                "-c".to_owned(),
                config.display().to_string(),
                "server".to_owned(),
            ],
            &[("RUST_LOG".to_owned(), "garage=warn".to_owned())],
            dir.join("garage.log"),
        )?;
        let garage = Garage {
            proc,
            endpoint: format!("http://{host}:{s3}"),
            config,
        };
        let node = wait_until("garage to answer", Duration::from_secs(30), || async {
            let out = garage.cli(&["node", "id", "-q"]).await.ok()?;
            out.split('@').next().map(|s| s.trim().to_owned())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", garage.proc.tail(20)))?;
        // `node id` reads the key on disk; the layout needs the RPC port up
        wait_until(
            "garage's RPC to answer",
            Duration::from_secs(30),
            || async {
                garage
                    .cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])
                    .await
                    .ok()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", garage.proc.tail(20)))?;
        garage.cli(&["layout", "apply", "--version", "1"]).await?;
        garage.cli(&["bucket", "create", BUCKET]).await?;
        Ok(garage)
    }

    /// A new access key `name` with read and write on the bucket.
    pub async fn key(&self, name: &str) -> anyhow::Result<S3Key> {
        let id = format!(
            "GK{}",
            (0..12)
                .map(|_| format!("{:02x}", rand::random::<u8>()))
                .collect::<String>()
        );
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        self.cli(&["key", "import", "--yes", &id, &secret, "-n", name])
            .await?;
        self.cli(&["bucket", "allow", "--read", "--write", BUCKET, "--key", &id])
            .await?;
        Ok(S3Key { id, secret })
    }

    /// The environment a service reaches the bucket with, as `key`.
    pub fn env(&self, key: &S3Key) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT".to_owned(), self.endpoint.clone()),
            ("AWS_ALLOW_HTTP".to_owned(), "true".to_owned()),
            ("AWS_REGION".to_owned(), REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), key.id.clone()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), key.secret.clone()),
        ]
    }

    fn store(&self, key: &S3Key) -> anyhow::Result<object_store::aws::AmazonS3> {
        Ok(object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region(REGION)
            .with_bucket_name(BUCKET)
            .with_access_key_id(&key.id)
            .with_secret_access_key(&key.secret)
            .build()?)
    }

    /// An object's stored bytes, through the S3 API as `key`.
    pub async fn get(&self, key: &S3Key, object: &str) -> anyhow::Result<Vec<u8>> {
        use object_store::ObjectStore;
        let got = self
            .store(key)?
            .get(&object_store::path::Path::from(object))
            .await?;
        Ok(got.bytes().await?.to_vec())
    }

    /// The object keys under `prefix`, through the S3 API as `key`.
    pub async fn list(&self, key: &S3Key, prefix: &str) -> anyhow::Result<Vec<(String, u64)>> {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let store = self.store(key)?;
        let prefix = object_store::path::Path::from(prefix);
        let all: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
        Ok(all
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect())
    }

    async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = tokio::process::Command::new(garage_bin())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .await?;
        anyhow::ensure!(
            out.status.success(),
            "garage {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
