//! NATS identities: `core nats-auth --dir DIR --edge edge-a --edge edge-b`
//! makes one nkey per link and the hub's and leaves' authorization config
//! from them. Idempotent: existing seeds are kept, edges already in DIR stay,
//! and the config files are written anew from the seeds. Seeds are secrets
//! (mode 0600) and are never committed; `.dev/` is ignored.
//!
//! Files (for edge `E`):
//! - `core.seed`: core's user on the hub (all subjects).
//! - `E.leaf.seed`: the edge's leaf connection to the hub, limited to
//!   [`protocol::subjects::edge_leaf_permissions`].
//! - `E.local.seed`: the edge process on its own leaf node.
//! - `hub-users.conf`: the hub's `authorization` block (include it at the
//!   top level of the hub's config).
//! - `E-leaf-users.conf`: the leaf node's `authorization` block.
//! - `E-remote.conf`: the credentials of the leaf's remote (include it in
//!   the remote's block).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nkeys::KeyPair;
use protocol::EdgeId;
use protocol::subjects::edge_leaf_permissions;

/// Writes (or refreshes) the identities and configs in `dir`; returns the
/// edges it covers.
pub fn generate(dir: &Path, edges: &[EdgeId]) -> anyhow::Result<Vec<EdgeId>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut all: BTreeSet<String> = edges.iter().map(|e| e.to_string()).collect();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(edge) = name.strip_suffix(".leaf.seed") {
            all.insert(edge.to_owned());
        }
    }
    let core = key(&dir.join("core.seed"))?;
    let mut users = vec![format!(
        "    # core: every subject\n    {{ nkey: \"{}\" }}",
        core.public_key()
    )];
    let mut covered = Vec::new();
    for edge in &all {
        let edge = EdgeId::new(edge.clone()).map_err(|e| anyhow::anyhow!("{edge}: {e}"))?;
        let leaf = key(&dir.join(format!("{edge}.leaf.seed")))?;
        let local = key(&dir.join(format!("{edge}.local.seed")))?;
        let p = edge_leaf_permissions(&edge);
        users.push(format!(
            "    # {edge}'s leaf link\n    {{ nkey: \"{}\", permissions: {{\n      publish: {{ allow: [{}] }}\n      subscribe: {{ allow: [{}] }}\n    }} }}",
            leaf.public_key(),
            quoted(&p.publish),
            quoted(&p.subscribe),
        ));
        write(
            &dir.join(format!("{edge}-leaf-users.conf")),
            &format!(
                "# written by `core nats-auth`: who may connect to {edge}'s leaf node\nauthorization {{\n  users = [\n    {{ nkey: \"{}\" }}\n  ]\n}}\n",
                local.public_key()
            ),
            false,
        )?;
        write(
            &dir.join(format!("{edge}-remote.conf")),
            &format!(
                "# written by `core nats-auth`: {edge}'s identity on the hub\nnkey: \"{}\"\n",
                seed(&leaf)?
            ),
            true,
        )?;
        covered.push(edge);
    }
    write(
        &dir.join("hub-users.conf"),
        &format!(
            "# written by `core nats-auth`: who may connect to the hub, and to what\nauthorization {{\n  users = [\n{}\n  ]\n}}\n",
            users.join("\n")
        ),
        false,
    )?;
    Ok(covered)
}

fn quoted(subjects: &[String]) -> String {
    subjects
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key in `path`, made and written (0600) when missing.
fn key(path: &PathBuf) -> anyhow::Result<KeyPair> {
    if let Ok(s) = std::fs::read_to_string(path) {
        return KeyPair::from_seed(s.trim())
            .map_err(|e| anyhow::anyhow!("{}: not an nkey seed: {e}", path.display()));
    }
    let kp = KeyPair::new_user();
    write(path, &seed(&kp)?, true)?;
    Ok(kp)
}

fn seed(kp: &KeyPair) -> anyhow::Result<String> {
    kp.seed().map_err(|e| anyhow::anyhow!("nkey seed: {e}"))
}

fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Reads a seed written by [`generate`] (for the connecting side).
pub fn read_seed(path: &Path) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("reading the NATS seed {}", path.display()))?;
    Ok(s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_seeds_and_covers_every_edge_it_has_seen() {
        let dir = tempfile::tempdir().unwrap();
        let a = EdgeId::new("edge-a").unwrap();
        let b = EdgeId::new("edge-b").unwrap();
        generate(dir.path(), std::slice::from_ref(&a)).unwrap();
        let seed_a = std::fs::read_to_string(dir.path().join("edge-a.leaf.seed")).unwrap();
        let covered = generate(dir.path(), std::slice::from_ref(&b)).unwrap();
        assert_eq!(covered, vec![a.clone(), b.clone()]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("edge-a.leaf.seed")).unwrap(),
            seed_a,
            "an existing identity is kept"
        );
        let hub = std::fs::read_to_string(dir.path().join("hub-users.conf")).unwrap();
        let pub_a = KeyPair::from_seed(seed_a.trim()).unwrap().public_key();
        assert!(hub.contains(&pub_a));
        assert!(hub.contains("\"cls.edge.edge-a.health\""));
        assert!(
            !hub.contains("\"cls.ev.core.>\""),
            "no edge may write core's events"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("edge-a.leaf.seed"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "seeds are private");
        }
    }
}
