//! `mpc solve --backend`: on a machine without a CUDA driver (this test's usual home),
//! `--backend cuda` exits 2 with a message about the driver and writes nothing, and
//! `--backend auto` solves on the CPU, says so on stderr and reports `backend: "cpu"`.
//! On a machine with a GPU the cuda checks are in `scripts/gpu-checks.sh` instead.

mod common;

use common::{fixture_path, mpc, read_json};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> Option<PathBuf> {
    let p = fixture_path(name);
    p.is_file().then_some(p)
}

/// A fresh temporary directory (removed on drop) and the output path `<dir>/<tag>.json` in it.
fn out_path(tag: &str) -> (tempfile::TempDir, PathBuf) {
    let d = common::tmp_dir("mpc-backend-test", tag);
    let p = d.path().join(format!("{tag}.json"));
    (d, p)
}

fn solve(backend: &str, problem: &Path, out: &Path) -> std::process::Output {
    mpc()
        .args(["solve", "--backend", backend, "--problem"])
        .arg(problem)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn cuda_without_driver_exits_2_and_writes_nothing() {
    if mpc::cuda::driver_available().is_ok() {
        eprintln!("SKIPPED: a CUDA driver is present (run scripts/gpu-checks.sh)");
        return;
    }
    let Some(p) = fixture("pendulum_exact.problem.json") else {
        eprintln!("SKIPPED: fixtures not found");
        return;
    };
    let (_dir, out) = out_path("cuda");
    let st = solve("cuda", &p, &out);
    let err = String::from_utf8_lossy(&st.stderr);
    assert_eq!(st.status.code(), Some(2), "{err}");
    assert!(err.contains("no CUDA driver") || err.contains("CUDA driver found but"), "{err}");
    assert!(st.stdout.is_empty());
    assert!(!out.exists(), "--backend cuda wrote a solution without a GPU");
}

#[test]
fn auto_without_driver_solves_on_cpu_and_says_so() {
    if mpc::cuda::driver_available().is_ok() {
        eprintln!("SKIPPED: a CUDA driver is present (run scripts/gpu-checks.sh)");
        return;
    }
    let Some(p) = fixture("pendulum_exact.problem.json") else {
        eprintln!("SKIPPED: fixtures not found");
        return;
    };
    let (_dir, out) = out_path("auto");
    let st = solve("auto", &p, &out);
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(st.status.success(), "{err}");
    assert!(err.contains("--backend auto: using cpu"), "{err}");
    let sol: Value = read_json(&out);
    assert_eq!(sol["backend"], "cpu");
    // Same answer as the plain CPU backend.
    let (_cpu_dir, cpu) = out_path("cpu");
    assert!(solve("cpu", &p, &cpu).status.success());
    let ref_sol: Value = read_json(&cpu);
    assert_eq!(sol, ref_sol);
}
