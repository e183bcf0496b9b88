//! The campus edge kit (`deploy/edge/`) against the real stack. Its
//! environment file names only settings the edge and the kit know; its
//! units pass `systemd-analyze verify`; and an edge brought up the way the
//! kit does it — the leaf's NATS config rendered by `render-leaf-conf` from
//! the filled-in environment file and the credentials `core nats-auth`
//! wrote, nats-server and edge-node started with that environment and
//! nothing else — joins the stack: a class placed on it runs, and its
//! events reach core through the leaf link.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use classroom_tests::garage;
use classroom_tests::nats::nats_server_bin;
use classroom_tests::process::Proc;
use classroom_tests::{
    Stack, StackOptions, bin_dir, free_port, free_udp_port, wait_until, workspace_root,
};
use reqwest::StatusCode;
use serde_json::json;

const EDGE: &str = "campus-1";

/// The `KEY=value` lines of an environment file, in order.
fn env_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The environment variables `edge-node --help` documents.
async fn edge_env_names() -> Vec<String> {
    let out = tokio::process::Command::new(bin_dir().join("edge-node"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.split("[env: ")
        .skip(1)
        .filter_map(|s| s.split_once('=').map(|(k, _)| k.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_brought_up_from_the_kit_joins_the_stack() {
    let kit = workspace_root().join("deploy/edge");
    let example = std::fs::read_to_string(kit.join("edge.env.example")).unwrap();
    let lines = env_lines(&example);

    // the example names only what the edge reads or the kit's own renderer uses
    let known = edge_env_names().await;
    assert!(known.contains(&"EDGE_ID".to_owned()), "{known:?}");
    const KIT_OWN: [&str; 5] = [
        "HUB_LEAF_URL",
        "HUB_CA",
        "LEAF_PORT",
        "LEAF_STORE_DIR",
        "LOG_FORMAT",
    ];
    // the S3 client (object_store) reads these from the environment itself
    const S3_ENV: [&str; 5] = [
        "AWS_ENDPOINT",
        "AWS_REGION",
        "AWS_ALLOW_HTTP",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ];
    for (k, v) in &lines {
        assert!(
            known.contains(k) || KIT_OWN.contains(&k.as_str()) || S3_ENV.contains(&k.as_str()),
            "edge.env.example sets {k}, which nothing reads"
        );
        assert!(
            !v.contains(" #") && !v.starts_with('"'),
            "systemd reads {k}={v} literally"
        );
    }

    // the units verify (with the paths of this checkout's binaries)
    let units = tempfile::tempdir().unwrap();
    for unit in ["classroom-edge.service", "classroom-edge-leaf.service"] {
        let text = std::fs::read_to_string(kit.join(unit))
            .unwrap()
            .replace(
                "/usr/local/bin/edge-node",
                &bin_dir().join("edge-node").display().to_string(),
            )
            .replace(
                "/usr/local/bin/nats-server",
                &nats_server_bin().display().to_string(),
            )
            .replace(
                "/usr/local/lib/classroom/render-leaf-conf",
                &kit.join("render-leaf-conf").display().to_string(),
            );
        std::fs::write(units.path().join(unit), text).unwrap();
    }
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let out = tokio::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(units.path().join("classroom-edge.service"))
            .arg(units.path().join("classroom-edge-leaf.service"))
            .output()
            .await
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() && said.trim().is_empty(),
            "systemd-analyze verify: {said}"
        );
    }

    // the stack knows campus-1 (its identities are in nats-auth); its own
    // campus-1 processes go, and the kit's take their place
    let mut stack = Stack::start(StackOptions {
        edges: vec!["edge-a", EDGE],
        students: 2,
        s3: true,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let (g, _) = stack.garage.as_ref().unwrap();
    let key = g.key(EDGE).await.unwrap();
    {
        let e = stack.edges.iter_mut().find(|e| e.id == EDGE).unwrap();
        e.proc.kill().await;
        e.leaf.proc.kill().await;
    }
    let box_dir = tempfile::tempdir().unwrap();
    let (http, udp, leaf) = (free_port(), free_udp_port(), free_port());
    let auth = &stack.nats_auth;
    let hub_leaf = stack.hub.leaf_port.unwrap();
    let fill: BTreeMap<&str, String> = [
        ("EDGE_ID", EDGE.to_owned()),
        ("EDGE_LISTEN", format!("127.0.0.1:{http}")),
        ("EDGE_PUBLIC_URL", format!("http://127.0.0.1:{http}")),
        ("EDGE_MEDIA_UDP", format!("127.0.0.1:{udp}")),
        ("EDGE_MEDIA_PUBLIC", format!("127.0.0.1:{udp}")),
        ("EDGE_CORE_URL", stack.core_url.clone()),
        ("HUB_LEAF_URL", format!("nats-leaf://127.0.0.1:{hub_leaf}")),
        ("HUB_CA", auth.ca_dir.join("ca.pem").display().to_string()),
        ("EDGE_NATS_URL", format!("nats://127.0.0.1:{leaf}")),
        (
            "EDGE_NATS_SEED_FILE",
            auth.seed_file(&format!("{EDGE}.local"))
                .display()
                .to_string(),
        ),
        ("LEAF_PORT", leaf.to_string()),
        (
            "LEAF_STORE_DIR",
            box_dir.path().join("leaf").display().to_string(),
        ),
        (
            "EDGE_DATA_DIR",
            box_dir.path().join("edge").display().to_string(),
        ),
        (
            "EDGE_SPOOL_DIR",
            box_dir.path().join("spool").display().to_string(),
        ),
        ("OBJECT_STORE_URL", format!("s3://{}", garage::BUCKET)),
        ("AWS_ENDPOINT", g.endpoint.clone()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_ACCESS_KEY_ID", key.id.clone()),
        ("AWS_SECRET_ACCESS_KEY", key.secret.clone()),
        ("EDGE_RECORDING", "false".to_owned()),
    ]
    .into_iter()
    .collect();
    // every FILL IN value gets one; no relay here, so its two lines go
    let mut filled = String::new();
    let mut pairs = Vec::new();
    for (k, v) in &lines {
        if k.starts_with("RELAY_") {
            continue;
        }
        let v = fill.get(k.as_str()).cloned().unwrap_or_else(|| v.clone());
        filled.push_str(&format!("{k}={v}\n"));
        pairs.push((k.clone(), v));
    }
    for k in fill.keys() {
        assert!(
            lines.iter().any(|(l, _)| l == k),
            "edge.env.example lacks {k}"
        );
    }
    let env_file = box_dir.path().join("edge.env");
    std::fs::write(&env_file, filled).unwrap();

    // the leaf's config, as the unit's ExecStartPre renders it
    let leaf_conf = box_dir.path().join("leaf.conf");
    let out = tokio::process::Command::new(kit.join("render-leaf-conf"))
        .arg(&env_file)
        .arg(&leaf_conf)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&leaf_conf).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the rendered config holds a seed: {mode:o}"
        );
    }
    let checked = tokio::process::Command::new(nats_server_bin())
        .args(["-c", &leaf_conf.display().to_string(), "-t"])
        .output()
        .await
        .unwrap();
    assert!(
        checked.status.success(),
        "nats-server -t: {}",
        String::from_utf8_lossy(&checked.stderr)
    );

    // started as the units start them: the leaf from its config, the edge
    // from the environment alone
    let mut leaf_proc = Proc::spawn(
        "kit-leaf",
        &nats_server_bin(),
        &["-c".to_owned(), leaf_conf.display().to_string()],
        &[],
        box_dir.path().join("leaf.log"),
    )
    .unwrap();
    let mut edge_proc = Proc::spawn(
        "kit-edge",
        &bin_dir().join("edge-node"),
        &[],
        &pairs,
        box_dir.path().join("edge.log"),
    )
    .unwrap();
    let edge_url = format!("http://127.0.0.1:{http}");
    wait_until(
        "the kit's edge to be ready",
        Duration::from_secs(30),
        || async {
            let r = reqwest::get(format!("{edge_url}/readyz")).await.ok()?;
            (r.status() == StatusCode::OK).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", edge_proc.tail(30), leaf_proc.tail(30)));

    // core hears its heartbeats (over the leaf link) with its new address
    let api = &stack.api;
    let admin = api.login("admin@demo.test").await.unwrap();
    wait_until(
        "core to see the kit's edge",
        Duration::from_secs(30),
        || async {
            let (_, v) = api.get("/edges", &admin).await.ok()?;
            v["edges"]
                .as_array()?
                .iter()
                .any(|e| e["id"] == EDGE && e["url"] == edge_url.as_str() && e["healthy"] == true)
                .then_some(())
        },
    )
    .await
    .unwrap();

    // a class placed on it runs, and its events reach core over the leaf
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let student = api.login("student1@demo.test").await.unwrap();
    let run = api
        .lesson_run(&teacher, json!({ "edge_id": EDGE }))
        .await
        .unwrap();
    let class = api.start(&teacher, &run).await.unwrap();
    assert_eq!(class.edge_id, EDGE);
    assert_eq!(class.edge_url, edge_url);
    let joined = api.join(&student, &class.id).await.unwrap();
    assert_eq!(joined.edge_url, edge_url);
    let (s, v) = api
        .post(
            &format!("/sessions/{}/chat", class.id),
            &student,
            json!({ "text": "hello from the campus box" }),
        )
        .await
        .unwrap();
    assert!(s.is_success(), "{s} {v}");
    wait_until(
        "the chat to reach core",
        Duration::from_secs(30),
        || async {
            let evs = api.events(&teacher, &class.id).await.ok()?;
            evs.iter()
                .any(|e| e["payload"]["text"] == "hello from the campus box")
                .then_some(())
        },
    )
    .await
    .unwrap();

    edge_proc.kill().await;
    leaf_proc.kill().await;
    stack.shutdown().await;
}
