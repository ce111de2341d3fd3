//! `mpc codegen`: the model's device code without --horizon (unchanged), the rendered solve
//! kernel with it (stdout or --out DIR), PTX with --ptx when NVRTC is available, and usage
//! errors with exit status 2.

mod common;

use common::mpc;

#[test]
fn device_code_without_horizon() {
    let out = mpc().args(["codegen", "--model", "pendulum"]).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("namespace mpc_model_pendulum"));
    assert!(!s.contains("mpc_ilqr_solve"));
}

#[test]
fn kernel_to_stdout_and_files() {
    let out = mpc().args(["codegen", "--model", "cartpole", "--horizon", "7", "--iters", "3", "--precision", "f32"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.starts_with("// ====="));
    assert!(s.contains("from the template `templates/ilqr_solve.cu.tera`"));
    assert!(s.contains("for the model `cartpole`"));
    assert!(s.contains("constexpr int HORIZON = 7;") && s.contains("constexpr int MAX_ITERS = 3;"));
    assert!(s.contains("void mpc_ilqr_solve_cartpole_f32("));

    let dir = std::env::temp_dir().join(format!("mpc-codegen-test-{}", std::process::id()));
    let nvrtc = mpc_cuda::nvrtc_available();
    let mut cmd = mpc();
    cmd.args(["codegen", "--model", "pendulum", "--horizon", "5"]).arg("--out").arg(&dir);
    if nvrtc {
        cmd.arg("--ptx");
    } else {
        eprintln!("!!!!! NVRTC missing: --ptx not exercised");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cu = std::fs::read_to_string(dir.join("mpc_ilqr_solve_pendulum_f64_T5.cu")).unwrap();
    assert!(cu.contains("typedef double real;"));
    // Every kernel the GPU backend can launch: solve, warp solve, three stages, backward ×2.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cu"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 7, "{names:?}");
    assert_eq!(names.iter().filter(|n| n.contains("backward")).count(), 2, "{names:?}");
    if nvrtc {
        let ptx_count = std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "ptx")).count();
        assert_eq!(ptx_count, 7);
    }
    if nvrtc {
        let ptx = std::fs::read_to_string(dir.join("mpc_ilqr_solve_pendulum_f64_T5.ptx")).unwrap();
        assert!(ptx.contains(".entry mpc_ilqr_solve_pendulum_f64"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors() {
    for args in [
        &["codegen", "--model", "nope", "--horizon", "3"][..],
        &["codegen", "--model", "pendulum", "--iters", "3"],
        &["codegen", "--model", "pendulum", "--lang", "rust", "--horizon", "3"],
        &["codegen", "--model", "pendulum", "--horizon", "0"],
        &["codegen", "--model", "pendulum", "--horizon", "3", "--precision", "f16"],
    ] {
        let out = mpc().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
