//! The benchmarks that run in seconds, run with `--smoke` so CI knows they
//! still run and print what the notes quote (no thresholds on the numbers).

/// Runs a benchmark binary with `--smoke`; the JSON on its last line.
fn smoke(bin: &str) -> serde_json::Value {
    let out = std::process::Command::new(bin)
        .arg("--smoke")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

#[test]
fn bench_seal_runs_and_reports_both_sides() {
    let report = smoke(env!("CARGO_BIN_EXE_bench-seal"));
    for store in ["dir", "memory"] {
        for side in ["plain", "sealed"] {
            for field in ["write_mb_s", "read_mb_s", "range_p50_ms", "range_p99_ms"] {
                assert!(
                    report[store][side][field].as_f64().is_some_and(|v| v > 0.0),
                    "{store}.{side}.{field} in {report}"
                );
            }
        }
    }
    for field in ["seal_mb_s", "open_mb_s"] {
        assert!(report[field].as_f64().is_some_and(|v| v > 0.0), "{report}");
    }
    // the chunk tags and header: a fraction of a percent, never free
    let overhead = report["size_overhead"].as_f64().unwrap();
    assert!(overhead > 0.0 && overhead < 0.01, "{report}");
}

#[test]
fn bench_analytics_runs_and_reports_every_figure() {
    let report = smoke(env!("CARGO_BIN_EXE_bench-analytics"));
    for field in [
        "/live/ingest_events_per_s",
        "/live/commands_per_s",
        "/backlog/events_per_s",
        "/rebuild/events_per_s",
        "/course/p50_ms",
        "/course/p99_ms",
    ] {
        assert!(
            report
                .pointer(field)
                .and_then(|v| v.as_f64())
                .is_some_and(|v| v > 0.0),
            "{field} in {report}"
        );
    }
    assert_eq!(report["course"]["refused"], 0, "{report}");
}

#[test]
fn bench_multistream_runs_and_reports_the_cpu_per_destination() {
    let report = smoke(env!("CARGO_BIN_EXE_bench-multistream"));
    assert!(
        report["program_cpu_cores"]
            .as_f64()
            .is_some_and(|v| v > 0.0),
        "{report}"
    );
    for n in ["1", "2", "4"] {
        assert!(
            report["cpu_per_private_destination"][n].as_f64().is_some(),
            "{n} in {report}"
        );
    }
    assert!(
        report["public_program_extra_cpu_cores"].as_f64().is_some(),
        "{report}"
    );
    // every push reached the server during its window
    assert!(
        report["min_received_kbps"]
            .as_f64()
            .is_some_and(|v| v > 0.0),
        "{report}"
    );
}
