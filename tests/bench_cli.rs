//! Smoke tests of `mpc bench`: a tiny grid runs and writes a well-formed JSON report; bad
//! options are rejected with exit status 2. No timing assertions.

mod common;

use common::{mpc, tmp_path};
use serde_json::Value;

fn positive_finite(v: &Value, what: &str) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("{what}: not a number: {v}"));
    assert!(x.is_finite() && x > 0.0, "{what}: {x} is not positive and finite");
    x
}

#[test]
fn tiny_grid_writes_valid_json() {
    let out = tmp_path("mpc-bench", "tiny.json");
    let status = mpc()
        .args(["bench", "--batch", "1,2", "--horizon", "2", "--reps", "2", "--warmup", "1", "--threads", "2", "--quiet", "--json"])
        .arg(&out)
        .output()
        .expect("run mpc bench");
    assert!(status.status.success(), "mpc bench failed: {}", String::from_utf8_lossy(&status.stderr));
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("| 2 | 2 |"), "table row missing:\n{stdout}");

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("JSON written")).expect("valid JSON");
    let _ = std::fs::remove_file(&out);
    assert_eq!(doc["settings"]["lqr_iter_fixed"], 5);
    assert_eq!(doc["settings"]["dtype"], "float64");
    assert!(doc["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(doc["machine"]["cpu"].is_string());
    assert!(doc["date"].as_str().unwrap().ends_with('Z'));
    assert!(doc["command"].as_array().unwrap().iter().any(|a| a == "bench"));
    let rows = doc["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    for (row, b) in rows.iter().zip([1u64, 2]) {
        assert_eq!(row["B"], b);
        assert_eq!(row["T"], 2);
        assert_eq!(row["reps"], 2);
        for phase in ["forward_ms", "backward_ms"] {
            for stat in ["median", "mean", "min", "max", "p10", "p90"] {
                positive_finite(&row[phase][stat], &format!("B={b} {phase}.{stat}"));
            }
            assert!(row[phase]["min"].as_f64() <= row[phase]["median"].as_f64());
            assert!(row[phase]["median"].as_f64() <= row[phase]["max"].as_f64());
        }
        positive_finite(&row["iterations_mean"], "iterations_mean");
        assert!(row["iterations_max"].as_u64().unwrap() <= 5);
        assert!(row["cost_mean"].as_f64().unwrap().is_finite());
    }
    // The Table II cells have mpc.pytorch figures (file or embedded), so the ratio is there.
    let t2 = &rows[0];
    positive_finite(&t2["peer_forward_ms"], "peer_forward_ms");
    positive_finite(&t2["speedup_forward"], "speedup_forward");
    positive_finite(&t2["speedup_backward"], "speedup_backward");
}

#[test]
fn bad_options_exit_2() {
    // (`--backend cuda` without a driver is covered by tests/cuda_bench_cli.rs; on a GPU machine
    // it is a valid benchmark, not a bad option.)
    for args in [&["bench", "--batch", "0"][..], &["bench", "--iters", "0"]] {
        let out = mpc().args(args).output().expect("run mpc bench");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
