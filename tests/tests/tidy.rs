//! Rules of the codebase that check themselves (no services, no network):
//! the service crates never depend on each other, `protocol` does no I/O,
//! no source file outside the tests grows past 1,000 lines, every file
//! ARCHITECTURE.md names exists, the edge's modules import each other only
//! downwards through its layers, NATS subjects and consumer names are
//! spelled only in `protocol::subjects`, and the libraries return typed
//! errors (thiserror; anyhow only in binaries) and keep their benchmark
//! binaries' dependencies behind a `bench` feature.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use classroom_tests::workspace_root;

/// The `[dependencies]` (and `[dev-dependencies]`) names of a crate.
fn dependencies(krate: &str) -> Vec<String> {
    let text = std::fs::read_to_string(workspace_root().join(krate).join("Cargo.toml"))
        .unwrap_or_else(|e| panic!("{krate}/Cargo.toml: {e}"));
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]" || line == "[dev-dependencies]";
            continue;
        }
        if !in_deps || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line
            .split(['=', '.', ' '])
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if p.is_dir() {
            if !matches!(
                name,
                "target" | "node_modules" | "dist" | ".git" | ".tools" | ".dev"
            ) {
                files(&p, exts, out);
            }
        } else if exts.iter().any(|x| name.ends_with(x)) {
            out.push(p);
        }
    }
}

#[test]
fn service_crates_never_depend_on_each_other() {
    let services = ["core", "edge-node", "relay"];
    for s in services {
        let deps = dependencies(s);
        assert!(
            deps.iter().any(|d| d == "protocol"),
            "{s}'s dependencies were not read: {deps:?}"
        );
        for other in services.iter().filter(|o| **o != s) {
            assert!(
                !deps.iter().any(|d| d == other),
                "{s} depends on {other}: services meet over HTTP, NATS and MoQ only"
            );
        }
    }
}

#[test]
fn libraries_never_depend_on_a_service() {
    for lib in ["protocol", "mesh-client", "asr", "search", "hosting"] {
        let deps = dependencies(lib);
        for service in ["core", "edge-node", "relay"] {
            assert!(
                !deps.iter().any(|d| d == service),
                "{lib} depends on the service {service}"
            );
        }
    }
    assert!(
        dependencies("mesh-client").iter().any(|d| d == "protocol"),
        "mesh-client's dependencies were not read"
    );
}

#[test]
fn protocol_does_no_io() {
    let deps = dependencies("protocol");
    for io in [
        "tokio",
        "async-nats",
        "sqlx",
        "reqwest",
        "axum",
        "hyper",
        "quinn",
        "str0m",
        "object_store",
        "rand",
    ] {
        assert!(
            !deps.iter().any(|d| d == io),
            "protocol depends on {io}: it must stay pure (no sockets, clocks, randomness)"
        );
    }
    let mut sources = Vec::new();
    files(
        &workspace_root().join("protocol/src"),
        &[".rs"],
        &mut sources,
    );
    for f in sources {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for banned in [
                "std::fs",
                "std::net",
                "std::process",
                "tokio::",
                "Utc::now",
                "Instant::now",
            ] {
                assert!(
                    !code.contains(banned),
                    "{}:{}: protocol uses {banned}",
                    f.display(),
                    n + 1
                );
            }
        }
    }
}

#[test]
fn nats_subjects_and_consumer_names_live_in_protocol_subjects_only() {
    let root = workspace_root();
    let mut sources = Vec::new();
    for dir in [
        "core/src",
        "edge-node/src",
        "relay/src",
        "mesh-client/src",
        "protocol/src",
    ] {
        files(&root.join(dir), &[".rs"], &mut sources);
    }
    let mut seen_in_subjects = 0;
    let mut wrong = Vec::new();
    for f in sources {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&f).unwrap();
        // unit tests may spell subjects out to check them
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or_default();
            let spelled = ["\"cls.", "\"$JS.", "durable_name: Some(\""]
                .iter()
                .any(|p| line.contains(p));
            if !spelled {
                continue;
            }
            if rel == "protocol/src/subjects.rs" {
                seen_in_subjects += 1;
            } else {
                wrong.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(seen_in_subjects > 5, "the checker reads protocol::subjects");
    assert!(
        wrong.is_empty(),
        "spell these through protocol::subjects: {wrong:#?}"
    );
}

#[test]
fn libraries_return_typed_errors_and_keep_bench_dependencies_behind_a_feature() {
    for lib in ["protocol", "mesh-client", "hosting"] {
        let mut sources = Vec::new();
        files(
            &workspace_root().join(lib).join("src"),
            &[".rs"],
            &mut sources,
        );
        assert!(!sources.is_empty());
        for f in sources {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(
                !text.contains("anyhow"),
                "{}: anyhow in library code",
                f.display()
            );
        }
    }
    for lib in ["asr", "search"] {
        let text = std::fs::read_to_string(workspace_root().join(lib).join("Cargo.toml")).unwrap();
        let mut benches = 0;
        for block in text.split("[[bin]]").skip(1) {
            let block = block.split("\n[").next().unwrap_or_default();
            if block.contains("name = \"bench") {
                benches += 1;
                assert!(
                    block.contains("required-features = [\"bench\"]"),
                    "{lib}: a bench binary without the bench feature:{block}"
                );
            }
        }
        assert!(benches > 0, "{lib}'s benchmarks were not read");
        // anyhow is for binaries: the library's own code returns typed errors
        let mut sources = Vec::new();
        files(
            &workspace_root().join(lib).join("src"),
            &[".rs"],
            &mut sources,
        );
        for f in sources
            .iter()
            .filter(|f| !f.to_string_lossy().contains("/bin/"))
        {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(
                !text.contains("anyhow"),
                "{}: anyhow in library code",
                f.display()
            );
        }
        for dep in ["clap", "anyhow"] {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{dep} ")) || l.starts_with(&format!("{dep}.")))
                .unwrap_or_else(|| panic!("{lib} has no {dep} line"));
            assert!(line.contains("optional = true"), "{lib}: {line}");
        }
    }
}

const MAX_LINES: usize = 1000;

#[test]
fn no_source_file_outside_the_tests_grows_past_a_thousand_lines() {
    let root = workspace_root();
    let mut sources = Vec::new();
    for dir in [
        "protocol",
        "core",
        "edge-node",
        "mesh-client",
        "relay",
        "asr",
        "search",
        "hosting",
        "web/src",
    ] {
        files(&root.join(dir), &[".rs", ".ts", ".svelte"], &mut sources);
    }
    let mut over = Vec::new();
    for f in sources {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel.contains("/tests/") || rel.ends_with("schema.d.ts") {
            continue; // tests, and the client generated from the OpenAPI document
        }
        let lines = std::fs::read_to_string(&f).unwrap().lines().count();
        if lines > MAX_LINES {
            over.push(format!("{rel}: {lines} lines (limit {MAX_LINES})"));
        }
    }
    assert!(over.is_empty(), "split these: {over:#?}");
}

#[test]
fn every_file_the_code_map_names_exists() {
    let root = workspace_root();
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut all = Vec::new();
    files(
        &root,
        &[
            ".rs", ".ts", ".svelte", ".mjs", ".sh", ".sql", ".md", ".py", ".json",
        ],
        &mut all,
    );
    let all: Vec<String> = all
        .iter()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    let mut missing = Vec::new();
    let mut named = 0;
    for name in map.split('`').skip(1).step_by(2) {
        let looks_like_file = !name.contains(' ')
            && !name.starts_with('-')
            && [".rs", ".ts", ".svelte", ".mjs", ".sh", ".sql"]
                .iter()
                .any(|x| name.ends_with(x));
        if !looks_like_file {
            continue;
        }
        named += 1;
        let suffix = format!("/{}", name.trim_start_matches("./"));
        if !all.iter().any(|p| p.ends_with(&suffix)) {
            missing.push(name.to_owned());
        }
    }
    assert!(
        named >= 50,
        "only {named} file names read from ARCHITECTURE.md"
    );
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names files that do not exist: {missing:?}"
    );
}

/// The edge's layers, bottom first: a module may import (`crate::x`) only
/// modules of its own layer or below. The session runtime knows nothing of
/// media; the SFU hands out taps and knows neither the relay nor the
/// recorder; the relay bridge and the recorder consume taps; the endpoints
/// and the wiring sit on top.
const EDGE_LAYERS: &[&[&str]] = &[
    &[
        "clock",
        "config",
        "event_log",
        "rate_limit",
        "join_tokens",
        "rtp",
        "policy",
    ],
    &["runtime"],
    &["sfu"],
    &["mesh"],
    &["fanout"],
    &["recorder"],
    &["http", "control", "health", "lib", "main"],
];

fn layer_of(module: &str) -> usize {
    EDGE_LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("edge-node module `{module}` is in no layer of EDGE_LAYERS"))
}

#[test]
fn the_edge_imports_only_downwards_and_has_no_import_loop() {
    let src = workspace_root().join("edge-node/src");
    let mut rs = Vec::new();
    files(&src, &[".rs"], &mut rs);
    let mut imports: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for path in rs {
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        // a file's unit tests may reach anywhere
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                imports.entry(module.clone()).or_default().insert(name);
            }
        }
    }
    let mut wrong = Vec::new();
    for (module, used) in &imports {
        for u in used {
            if layer_of(u) > layer_of(module) {
                wrong.push(format!("{module} imports {u}, a layer above it"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // within one layer, no loop either
    for (module, used) in &imports {
        for u in used {
            assert!(
                !imports.get(u).is_some_and(|back| back.contains(module)),
                "{module} and {u} import each other"
            );
        }
    }
    // the checker does read imports: the SFU uses the session runtime
    assert!(
        imports.get("sfu").is_some_and(|u| u.contains("runtime")),
        "{imports:?}"
    );
}
