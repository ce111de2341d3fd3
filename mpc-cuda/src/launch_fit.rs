//! Every launch the plan makes fits the kernel it launches: the block sizes of every layout,
//! solve and backward, checked against the most threads per block each entry point's
//! registers allow on sm_90, as `ptxas` reports them for the kernels NVRTC compiles.
//! A device that only records launches runs the real launch sequence (`orchestrate::solve`,
//! `orchestrate::backward`): reads return zeros (no problem still active), so the plan goes
//! through every launch without executing a kernel.

use std::collections::HashMap;

use crate::args::{Arg, Buf};
use crate::orchestrate::{self, BackwardInputs, Blocks, KernelDevice, PlanError};
use crate::render::{KernelLayout, KernelOptions, Precision, RenderedKernel, render_backward, render_forward};
use mpc_models::{Cartpole, Quadrotor};
use mpc_runtime::model::Model;
use mpc_runtime::solver::{Batch, Bound, Solution, SolverOptions};

/// Registers per SM and per block on sm_80 and sm_90, and their allocation granularity (per
/// warp); the hardware's thread limit per block.
const REGISTERS_PER_BLOCK: u32 = 65_536;
const REGISTER_GRANULE_PER_WARP: u32 = 256;
const MAX_THREADS_PER_BLOCK: u32 = 1024;

/// The most threads per block for `regs` registers per thread (what
/// `CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK` reports for a kernel without a launch bound).
fn max_threads(regs: u32) -> u32 {
    let per_warp = (regs.max(1) * 32).div_ceil(REGISTER_GRANULE_PER_WARP) * REGISTER_GRANULE_PER_WARP;
    ((REGISTERS_PER_BLOCK / per_warp) * 32).min(MAX_THREADS_PER_BLOCK)
}

/// Records launches; answers `max_block` from the ptxas limits.
struct Recorder {
    limits: HashMap<String, u32>,
    launches: Vec<(String, u32, u32)>,
}

impl KernelDevice for Recorder {
    type Error = PlanError;
    fn ensure(&mut self, _: Buf, _: usize) -> Result<(), PlanError> {
        Ok(())
    }
    fn write(&mut self, _: Buf, _: &[f64]) -> Result<(), PlanError> {
        Ok(())
    }
    fn write_ints(&mut self, _: Buf, _: &[i32]) -> Result<(), PlanError> {
        Ok(())
    }
    fn read(&mut self, _: Buf, len: usize) -> Result<Vec<f64>, PlanError> {
        Ok(vec![0.0; len])
    }
    fn read_ints(&mut self, _: Buf, len: usize) -> Result<Vec<i32>, PlanError> {
        Ok(vec![0; len])
    }
    fn launch(&mut self, entry: &str, grid: u32, block: u32, _: &[Arg], _: i32) -> Result<(), PlanError> {
        self.launches.push((entry.to_string(), grid, block));
        Ok(())
    }
    fn sync(&mut self) -> Result<(), PlanError> {
        Ok(())
    }
    fn max_block(&mut self, entry: &str) -> Result<u32, PlanError> {
        Ok(*self.limits.get(entry).unwrap_or_else(|| panic!("no ptxas limit for {entry}")))
    }
}

/// Registers of every entry point of `kernels` from NVRTC + ptxas for `sm`, as thread limits.
fn limits(kernels: &[&RenderedKernel], sm: &str) -> HashMap<String, u32> {
    let nv = crate::NvrtcOptions::new(sm.replace("sm_", "compute_"));
    let mut out = HashMap::new();
    for k in kernels {
        // Through the PTX cache: the other NVRTC tests compile the same sources.
        let ptx = crate::cache::global().get_or_compile(&k.source, &nv).unwrap_or_else(|e| panic!("{}: {e}", k.kernel));
        let rep = crate::assemble(&ptx, sm).unwrap_or_else(|e| panic!("{}: {e}", k.kernel));
        for e in &k.entries {
            let r = rep.kernels.iter().find(|r| &r.name == e).unwrap_or_else(|| panic!("ptxas did not report {e}"));
            out.insert(e.clone(), max_threads(r.registers));
            eprintln!("{sm} {e}: {} registers -> at most {} threads per block", r.registers, max_threads(r.registers));
        }
    }
    out
}

/// Run the solve and backward plans of `M` for every layout and batch size against the
/// limits, and check every launch.
fn check<M: Model>(solver: SolverOptions, horizon: usize) {
    if crate::load_nvrtc().is_err() || crate::locate_ptxas().is_err() {
        assert!(std::env::var_os("CI").is_none(), "NVRTC and ptxas are required in CI (scripts/setup.sh)");
        eprintln!("SKIPPED: no NVRTC/ptxas (run scripts/setup.sh)");
        return;
    }
    let (nx, nu, n, t) = (M::NX, M::NU, M::NX + M::NU, horizon);
    for layout in [KernelLayout::SingleLaunch, KernelLayout::WarpPerProblem, KernelLayout::ThreeStage] {
        let opts = KernelOptions::new(t, Precision::F64).with_solver(solver.clone()).with_layout(layout);
        let fwd = render_forward::<M>(&opts).unwrap();
        let bwd = render_backward::<M>(&opts).unwrap();
        let all: Vec<&RenderedKernel> = fwd.iter().chain([&bwd]).collect();
        // sm_90 (H100/H200); sm_80 has the same register file and thread limits, and its
        // kernels compile to within a few registers of these (tests/cuda_host_emulation.rs
        // assembles both).
        for sm in ["sm_90"] {
            let limits = limits(&all, sm);
            for b in [1usize, 7, 256, 4096] {
                let (x0, cm, cv) = (vec![0.0; b * nx], vec![0.0; b * t * n * n], vec![0.0; b * t * n]);
                let batch = Batch {
                    size: b,
                    x_init: &x0,
                    cost_hess: &cm,
                    cost_lin: &cv,
                    u_lower: Bound::None,
                    u_upper: Bound::None,
                    u_init: None,
                };
                let params = M::default().param_values();
                let mut dev = Recorder { limits: limits.clone(), launches: Vec::new() };
                let ks: Vec<&RenderedKernel> = fwd.iter().collect();
                orchestrate::solve(&mut dev, layout, &ks, &params, &batch, Blocks::forward(layout)).unwrap();
                let sol = Solution { x: vec![0.0; b * t * nx], u: vec![0.0; b * t * nu], ..Solution::default() };
                let (gx, gu) = (vec![0.0; b * t * nx], vec![0.0; b * t * nu]);
                let inp = BackwardInputs { sol: &sol, grad_x: &gx, grad_u: &gu, params: true };
                orchestrate::backward(&mut dev, &bwd, &params, &batch, &inp, Blocks::backward()).unwrap();
                assert!(dev.launches.len() >= 2, "{layout:?} B={b}: {:?}", dev.launches);
                for (entry, grid, block) in &dev.launches {
                    let most = limits[entry];
                    assert!(
                        *block >= 1 && *block <= most && *grid >= 1,
                        "{} {layout:?} {sm} B={b}: {entry} launched with {grid} blocks of {block} threads; its registers allow {most}",
                        M::NAME
                    );
                }
            }
        }
    }
}

#[test]
fn register_limits_follow_the_hardware_rule() {
    // 32 registers: 2048 per SM, capped at 1024 per block; 168 (the cart-pole's line search):
    // 168·32 = 5376 → 5376 per warp → 12 warps = 384 threads; 255: 8160 → 8192 → 8 warps.
    assert_eq!(max_threads(32), 1024);
    assert_eq!(max_threads(168), 384);
    assert_eq!(max_threads(255), 256);
}

#[test]
fn every_launch_fits_its_kernel_quadrotor() {
    check::<Quadrotor>(SolverOptions::default(), 10);
}

/// Eight line-search steps: the three-stage line search runs 8 threads per problem, the case
/// that overflowed the register file when the block was sized without the kernel's limit.
#[test]
fn every_launch_fits_its_kernel_cartpole_with_eight_line_search_steps() {
    let ls: Vec<f64> = (0..8).map(|i| 0.5f64.powi(i)).collect();
    check::<Cartpole>(SolverOptions { line_search: ls, ..SolverOptions::default() }, 10);
}
