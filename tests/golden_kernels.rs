//! Golden files of the rendered kernels: the generated device code, the rendered solve kernel
//! (T = 10, K = 5) and the backward kernels (T = 10, exact and Gauss-Newton) of the pendulum,
//! both precisions, and its three-stage and warp-per-problem kernels (double), must equal the files under
//! `tests/golden/` byte for byte, so any change of the code generator or of a template shows up
//! as a reviewable diff. After an intended change, refresh them with
//! `MPC_UPDATE_GOLDEN=1 cargo test --test golden_kernels` and commit the new files.

use mpc_models::Pendulum;
use mpc_runtime::Model;
use mpc_cuda::render::{KernelOptions, Precision, render_backward, render_solve, render_solve_warp, render_stages};
use mpc_runtime::{GradientMode, SolverOptions};
use std::path::PathBuf;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

fn compare_or_update(name: &str, actual: &str) -> Option<String> {
    let path = golden_dir().join(name);
    if std::env::var_os("MPC_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        eprintln!("updated {}", path.display());
        return None;
    }
    let expected = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => return Some(format!("{}: {e} (create it with MPC_UPDATE_GOLDEN=1)", path.display())),
    };
    if expected == actual {
        return None;
    }
    let line = expected.lines().zip(actual.lines()).position(|(a, b)| a != b).unwrap_or(expected.lines().count().min(actual.lines().count()));
    Some(format!(
        "{} differs from the generated code first at line {} (expected {:?}, got {:?}); if intended, rerun with MPC_UPDATE_GOLDEN=1 and commit",
        path.display(),
        line + 1,
        expected.lines().nth(line).unwrap_or("<end>"),
        actual.lines().nth(line).unwrap_or("<end>")
    ))
}

#[test]
fn rendered_code_matches_golden_files() {
    let mut failures = Vec::new();
    failures.extend(compare_or_update("pendulum_device.cuh", Pendulum::CUDA_SOURCE));
    for precision in [Precision::F32, Precision::F64] {
        let k = render_solve::<Pendulum>(&KernelOptions::new(10, precision).with_iters(5)).expect("render");
        failures.extend(compare_or_update(&format!("pendulum_solve_T10_K5_{}.cu", precision.suffix()), &k.source));
        for (mode, tag) in [(GradientMode::Exact, "exact"), (GradientMode::GaussNewton, "gn")] {
            let o = KernelOptions::new(10, precision).with_solver(SolverOptions { gradient: mode, ..SolverOptions::default() });
            let k = render_backward::<Pendulum>(&o).expect("render");
            failures.extend(compare_or_update(&format!("pendulum_backward_T10_{}_{tag}.cu", precision.suffix()), &k.source));
        }
    }
    // The three-stage layout (double only: its text differs from float's in the type alone).
    for k in render_stages::<Pendulum>(&KernelOptions::new(10, Precision::F64).with_iters(5)).expect("render") {
        failures.extend(compare_or_update(&format!("pendulum_{}_T10_K5.cu", k.kernel.trim_start_matches("mpc_ilqr3_pendulum_")), &k.source));
    }
    let w = render_solve_warp::<Pendulum>(&KernelOptions::new(10, Precision::F64).with_iters(5)).expect("render");
    failures.extend(compare_or_update("pendulum_solve_warp_T10_K5_f64.cu", &w.source));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
