//! Smoke tests of `mpc bench`: a tiny grid runs and writes a well-formed JSON report with the
//! machine's measured limits (arithmetic and memory), the achieved rates and memory floors; `--peer-run` runs a peer benchmark in the
//! same invocation and labels the ratios as same-run; bad options and a failing peer are
//! rejected with exit status 2. No timing assertions.

mod common;

use common::{mpc, tmp_dir, tmp_path};
use serde_json::Value;
use std::path::Path;

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
    // The Table II cells have mpc.pytorch figures (file or embedded), so the ratio is there,
    // labelled as stored (not measured in this run).
    let t2 = &rows[0];
    positive_finite(&t2["peer_forward_ms"], "peer_forward_ms");
    positive_finite(&t2["speedup_forward"], "speedup_forward");
    positive_finite(&t2["speedup_backward"], "speedup_backward");
    assert_eq!(doc["peer"]["same_run"], false);
    assert!(stdout.contains("stored mpc.pytorch fwd ms") && stdout.contains("not measured in this one"), "{stdout}");
    // The machine's limit and each case's rate against it.
    let limit = &doc["machine_limit"];
    let one = positive_finite(&limit["gflops_one_core"], "gflops_one_core");
    positive_finite(&limit["gflops_all_threads"], "gflops_all_threads");
    assert!(["avx512f", "avx2+fma", "scalar"].contains(&limit["isa"].as_str().unwrap()), "{limit}");
    for row in rows {
        positive_finite(&row["gflops_forward"], "gflops_forward");
        positive_finite(&row["gflops_backward"], "gflops_backward");
        let f = positive_finite(&row["fraction_of_limit_forward"], "fraction_of_limit_forward");
        // Below the machine's FMA peak (this debug build runs far below it).
        assert!(f < 1.0, "{row} (one core: {one} GFLOP/s)");
    }
    assert!(stdout.contains("GFLOP/s fwd / bwd (of limit)"), "{stdout}");
    // The memory limit and each case's memory floor (its least bytes at that bandwidth).
    let mem = &doc["memory_limit"];
    for key in ["read_gbs_one_core", "write_gbs_one_core", "read_gbs_all_threads", "write_gbs_all_threads"] {
        positive_finite(&mem[key], key);
    }
    assert!(["ordinary", "non-temporal"].contains(&mem["write_stores"].as_str().unwrap()), "{mem}");
    for (row, b) in rows.iter().zip([1.0, 2.0]) {
        // B problems of n = 14, T = 2: C alone is B·2·196 f64 in both passes.
        let read = positive_finite(&row["bytes_backward"]["read"], "bytes_backward.read");
        let write = positive_finite(&row["bytes_backward"]["write"], "bytes_backward.write");
        assert!(read > b * 2.0 * 196.0 * 8.0 && write > b * 2.0 * 196.0 * 8.0, "{row}");
        positive_finite(&row["bytes_forward"]["read"], "bytes_forward.read");
        for (floor, time) in [("memory_floor_forward_ms", "forward_ms"), ("memory_floor_backward_ms", "backward_ms")] {
            let f = positive_finite(&row[floor], floor);
            // A few kB: far below the time of a whole solve.
            assert!(f < row[time]["median"].as_f64().unwrap(), "{row}");
        }
    }
    assert!(stdout.contains("memory floor fwd / bwd ms (of time)") && stdout.contains("Memory floor:"), "{stdout}");
}

/// A stand-in for `bench_mpc_pytorch.py`: checks the arguments `mpc bench --peer-run` passes and
/// writes a report in the peer's format (`ms` per (B, T)), or fails when `fail` is set.
fn fake_peer(dir: &Path, fail: bool) -> std::path::PathBuf {
    let script = dir.join("fake_peer.py");
    let body = format!(
        r#"import argparse, json, sys
ap = argparse.ArgumentParser()
ap.add_argument("--batches", type=int, nargs="+", required=True)
ap.add_argument("--horizons", type=int, nargs="+", required=True)
ap.add_argument("--lqr-iter", type=int, required=True)
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--seed", type=int, required=True)
ap.add_argument("--wait-idle", type=float, required=True)
ap.add_argument("--out", required=True)
a = ap.parse_args()
if {fail}:
    sys.exit("ModuleNotFoundError: No module named 'mpc'")
assert a.lqr_iter == 3 and a.threads == 2 and a.seed == 7, a
rows = [dict(B=b, T=t, forward_ms=dict(median=1000.0 * b + t), backward_ms=dict(median=100.0 * b + t))
        for b in a.batches for t in a.horizons]
json.dump(dict(rows=rows, machine=dict(cpu="fake", nproc=2, mpc="0.0.6", torch="0", python="3")), open(a.out, "w"))
print("fake peer done", file=sys.stderr)
print("| fake peer table |")
"#,
        fail = if fail { "True" } else { "False" }
    );
    std::fs::write(&script, body).unwrap();
    script
}

fn peer_bench(script: &Path, json: &Path) -> std::process::Output {
    mpc()
        .args(["bench", "--batch", "1,2", "--horizon", "2", "--iters", "3", "--seed", "7", "--reps", "2", "--warmup", "1"])
        .args(["--threads", "2", "--quiet", "--peer-run", "python3", "--peer-script"])
        .arg(script)
        .arg("--json")
        .arg(json)
        .output()
        .expect("run mpc bench")
}

#[test]
fn peer_run_measures_the_peer_in_the_same_invocation() {
    let d = tmp_dir("mpc-bench", "peer-run");
    let json = d.path().join("out.json");
    let out = peer_bench(&fake_peer(d.path(), false), &json);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("fake peer done"), "the peer's progress is shown: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("mpc.pytorch fwd ms (this run)") && stdout.contains("same-run speed-ups"), "{stdout}");
    assert!(!stdout.contains("stored"), "{stdout}");
    // The peer's own output goes to stderr, not into this command's table.
    assert!(!stdout.contains("fake peer table") && stderr.contains("fake peer table"), "{stdout}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["peer"]["same_run"], true);
    assert_eq!(doc["peer"]["report"]["machine"]["cpu"], "fake");
    for row in doc["rows"].as_array().unwrap() {
        let (b, t) = (row["B"].as_f64().unwrap(), row["T"].as_f64().unwrap());
        // The ratio is the peer's median of this very (B, T) over ours.
        assert_eq!(row["peer_forward_ms"].as_f64().unwrap(), 1000.0 * b + t);
        let ratio = row["speedup_forward"].as_f64().unwrap();
        let ours = row["forward_ms"]["median"].as_f64().unwrap();
        assert!((ratio - (1000.0 * b + t) / ours).abs() <= 1e-9 * ratio, "{row}");
    }
}

#[test]
fn failing_peer_exits_2_and_writes_nothing() {
    let d = tmp_dir("mpc-bench", "peer-fail");
    let json = d.path().join("out.json");
    let out = peer_bench(&fake_peer(d.path(), true), &json);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--peer-run") && stderr.contains("No module named 'mpc'"), "{stderr}");
    assert!(!json.exists());
    // A missing script is named too.
    let out = peer_bench(&d.path().join("absent.py"), &json);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.py"));
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
