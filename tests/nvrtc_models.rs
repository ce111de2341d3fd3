//! Every bundled model's generated CUDA source compiles with NVRTC, in `float` and `double`, for
//! `compute_80` and `compute_90`, and assembles with `ptxas` for `sm_80` and `sm_90` without
//! register spills (except the ratcheted [`KNOWN_SPILLS`]).
//!
//! Needs no GPU: NVRTC and `ptxas` come from the PyPI wheels that `scripts/setup.sh` installs.
//! When NVRTC is missing the tests fail under `CI` and skip loudly otherwise.

mod common;

use common::in_ci;
use mpc_models::{Cartpole, Pendulum, Quadrotor};
use mpc_runtime::Model;
use mpc_cuda::{self as cuda, NvrtcOptions};

/// Known register spills, as a ratchet: (check kernel, most spill bytes, stores or loads,
/// allowed). A kernel that spills and is not listed, or spills more than listed, fails the test;
/// so does a listed kernel that no longer spills (then remove its line).
///
/// * `mpc_check_quadrotor_hessian_f64`: the generated `weighted_hessian` computes ~2400
///   common subexpressions before writing any of the 196 entries of `H`, so in double precision
///   the live set exceeds 255 registers (136 B spilled on sm_80 and sm_90 with CUDA 12.9). To be
///   fixed in the code generator (store `H` entries as soon as they are final, or split the
///   Hessian into blocks); then delete this entry.
const KNOWN_SPILLS: &[(&str, u32)] = &[];

/// (NVRTC virtual architecture, ptxas real architecture).
const TARGETS: [(&str, &str); 2] = [("compute_80", "sm_80"), ("compute_90", "sm_90")];

/// True when the CUDA compilers are usable; panics in CI when they are not.
fn tools_or_skip() -> bool {
    let nvrtc = cuda::load_nvrtc();
    let ptxas = cuda::locate_ptxas();
    match (&nvrtc, &ptxas) {
        (Ok(lib), Ok(p)) => {
            eprintln!("NVRTC {:?}: {}\nptxas: {}", lib.version(), lib.path().display(), p.display());
            true
        }
        _ => {
            let why = [nvrtc.err().map(|e| e.to_string()), ptxas.err().map(|e| e.to_string())]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n");
            if in_ci() {
                panic!("CUDA compilers are required in CI:\n{why}");
            }
            eprintln!("\n!!!!! SKIPPING NVRTC MODEL TEST (run scripts/setup.sh): {why}\n");
            false
        }
    }
}

fn check_model<M: Model>() {
    if !tools_or_skip() {
        return;
    }
    let src = cuda::check_source::<M>();
    assert!(
        M::CUDA_SOURCE.contains(&format!("namespace mpc_model_{}", M::NAME)),
        "{}: CUDA_SOURCE lacks `namespace mpc_model_{}`",
        M::NAME,
        M::NAME
    );
    let mut want = cuda::check_kernel_names(M::NAME);
    want.sort();
    let mut failures = Vec::new();
    for (arch, sm) in TARGETS {
        let opts = NvrtcOptions { program_name: format!("{}.cu", M::NAME), ..NvrtcOptions::new(arch) };
        let ptx = match cuda::compile_ptx(&src, &opts) {
            Ok(p) => p,
            Err(e) => panic!("{} does not compile for {arch}:\n{e}\n--- source ---\n{}", M::NAME, numbered(&src)),
        };
        if arch == TARGETS[0].0 && !ptx.log().is_empty() {
            eprintln!("{} {arch} NVRTC warnings:\n{}", M::NAME, ptx.log());
        }
        let mut entries = ptx.entry_points();
        entries.sort();
        assert_eq!(entries, want, "{} {arch}: kernels in PTX", M::NAME);

        let report = cuda::assemble(ptx.as_str(), sm).unwrap_or_else(|e| panic!("{} {sm}: {e}", M::NAME));
        for name in cuda::check_kernel_names(M::NAME) {
            let k = report
                .kernel(&name)
                .unwrap_or_else(|| panic!("{} {sm}: no ptxas report for {name}:\n{}", M::NAME, report.log));
            println!(
                "{:<10} {sm}  {:<40} {:>3} registers, {:>4} B stack, spills {}/{} B",
                M::NAME,
                name,
                k.registers,
                k.stack_frame_bytes,
                k.spill_store_bytes,
                k.spill_load_bytes
            );
        }
        for name in cuda::check_kernel_names(M::NAME) {
            let k = report.kernel(&name).expect("checked above");
            let spilled = k.spill_store_bytes.max(k.spill_load_bytes);
            let known = KNOWN_SPILLS.iter().find(|(n, _)| *n == name).map(|&(_, b)| b);
            match known {
                None if k.spills() => failures.push(format!(
                    "{sm} {}: {} B spill stores, {} B spill loads ({} registers)",
                    k.name, k.spill_store_bytes, k.spill_load_bytes, k.registers
                )),
                Some(allowed) if spilled > allowed => failures.push(format!(
                    "{sm} {}: spills grew to {} B stores / {} B loads (known: {allowed} B)",
                    k.name, k.spill_store_bytes, k.spill_load_bytes
                )),
                Some(_) if !k.spills() => failures.push(format!(
                    "{sm} {}: no longer spills; remove it from KNOWN_SPILLS",
                    k.name
                )),
                Some(allowed) => eprintln!(
                    "!!!!! KNOWN SPILL {sm} {}: {} B stores / {} B loads (allowed up to {allowed} B, see KNOWN_SPILLS)",
                    k.name, k.spill_store_bytes, k.spill_load_bytes
                ),
                None => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}: register spills:\n{}", M::NAME, failures.join("\n"));
}

fn numbered(src: &str) -> String {
    src.lines().enumerate().map(|(i, l)| format!("{:>5} {l}\n", i + 1)).collect()
}

#[test]
fn pendulum_cuda_compiles_without_spills() {
    check_model::<Pendulum>();
}

#[test]
fn cartpole_cuda_compiles_without_spills() {
    check_model::<Cartpole>();
}

#[test]
fn quadrotor_cuda_compiles_without_spills() {
    check_model::<Quadrotor>();
}
