//! `mpc bench --backend cpu|cuda|auto`:
//!
//! * without a CUDA driver (this test's usual home): `--backend cuda` exits 2 with a message
//!   about the driver and writes nothing; `--backend auto` times the CPU, says so on stderr and
//!   records `backend: "cpu"` (requested `auto`) with no GPU;
//! * with a driver and a GPU: a tiny grid on the GPU writes a report naming the GPU and the
//!   driver, with kernel-only times and a GPU-vs-CPU check within tolerance.

mod common;

use common::{mpc, read_json, tmp_path};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Output;

fn bench(backend: &str, json: &PathBuf) -> Output {
    let _ = std::fs::remove_file(json);
    mpc()
        .args(["bench", "--backend", backend, "--batch", "1,3", "--horizon", "2", "--reps", "2", "--warmup", "1"])
        .args(["--rounds", "1", "--quiet", "--json"])
        .arg(json)
        .output()
        .expect("run mpc bench")
}

fn no_driver() -> bool {
    match mpc::cuda::driver_available() {
        Ok(()) => false,
        Err(e) => {
            eprintln!("no CUDA driver here: {e}");
            true
        }
    }
}

#[test]
fn cuda_without_driver_exits_2_and_writes_nothing() {
    if !no_driver() {
        eprintln!("SKIPPED: a CUDA driver is present (see cuda_on_gpu_writes_gpu_report)");
        return;
    }
    let json = tmp_path("mpc-cuda-bench", "cuda.json");
    let out = bench("cuda", &json);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("mpc bench: --backend cuda:") && err.contains("CUDA driver"), "{err}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!json.exists());
}

#[test]
fn auto_without_driver_times_cpu_and_says_so() {
    if !no_driver() {
        eprintln!("SKIPPED: a CUDA driver is present");
        return;
    }
    let json = tmp_path("mpc-cuda-bench", "auto.json");
    let out = bench("auto", &json);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("--backend auto: using cpu"), "{err}");
    let doc: Value = read_json(&json);
    let _ = std::fs::remove_file(&json);
    assert_eq!(doc["settings"]["backend"], "cpu");
    assert_eq!(doc["settings"]["backend_requested"], "auto");
    assert!(doc["gpu"].is_null());
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["kernel_forward_ms"].is_null() && r["check_vs_cpu"].is_null()));
}

#[test]
fn cuda_on_gpu_writes_gpu_report() {
    if no_driver() {
        eprintln!("SKIPPED: no CUDA driver (scripts/gpu-checks.sh runs this on a GPU machine)");
        return;
    }
    let json = tmp_path("mpc-cuda-bench", "gpu.json");
    let out = bench("cuda", &json);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let doc: Value = read_json(&json);
    let _ = std::fs::remove_file(&json);
    assert_eq!(doc["settings"]["backend"], "cuda");
    assert!(doc["gpu"]["name"].is_string(), "{}", doc["gpu"]);
    assert!(doc["gpu"]["driver_cuda_version"].is_string(), "{}", doc["gpu"]);
    for r in doc["rows"].as_array().unwrap() {
        for k in ["kernel_forward_ms", "kernel_backward_ms"] {
            let m = r[k]["median"].as_f64().unwrap_or_else(|| panic!("{k} missing: {r}"));
            assert!(m.is_finite() && m > 0.0, "{k}: {m}");
        }
        let c = &r["check_vs_cpu"];
        for (k, tol) in [("x_max_abs", 1e-6), ("u_max_abs", 1e-6), ("cost_max_rel", 1e-9), ("grad_max_rel", 1e-6)] {
            let v = c[k].as_f64().unwrap_or_else(|| panic!("check_vs_cpu.{k} missing: {c}"));
            assert!(v <= tol, "GPU differs from the CPU solver: {k} = {v:e} > {tol:e} ({r})");
        }
    }
}
