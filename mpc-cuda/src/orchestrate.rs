//! The launch sequence of every kernel layout, written once and run by two devices: the GPU
//! ([`super::launch`], through `cudarc`) and host emulation ([`super::host`], the same kernel
//! sources built for the CPU). Which buffers are uploaded, the kernel sequence with its grid and
//! block shapes, the three-stage layout's rounds, the downloads and their conversion to a
//! [`Solution`] / [`Gradients`] are all here; a device only moves bytes and launches an entry
//! point with the argument list of [`super::args`]. So the host-emulation tests exercise every
//! line of the GPU path except the driver calls themselves.

use std::time::Instant;

use super::args::{Arg, Buf, args};
use super::launch::{BLOCK_SIZE, LaunchTiming, STAGED_BLOCK, WARPS_PER_BLOCK};
use super::render::{KernelKind, KernelLayout, RenderedKernel, staged_state_len, warp_state_len, work_len};
use mpc_runtime::solver::{Batch, Bound, Gradients, Solution};

/// What the launch sequence itself finds wrong (a device turns it into its own error type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlanError {
    /// The batch, the parameters or the solution do not fit the kernels (the message says how).
    Batch(String),
    /// The three-stage layout was still iterating after its most rounds (a kernel bug).
    StillActive(usize),
    /// A kernel wrote an output the runtime cannot read (an unknown status code).
    Output(String),
}

/// A device that runs rendered kernels: buffers by name ([`Buf`]), real buffers converted from
/// and to `f64` in the kernels' precision.
pub(crate) trait KernelDevice {
    /// The device's error type.
    type Error: From<PlanError>;
    /// Make `buf` hold at least `len` elements (reals, or ints for [`Buf::is_int`]); `len == 0`
    /// binds a null pointer.
    fn ensure(&mut self, buf: Buf, len: usize) -> Result<(), Self::Error>;
    /// Copy `data` (converted to the kernels' real type) to the start of `buf`.
    fn write(&mut self, buf: Buf, data: &[f64]) -> Result<(), Self::Error>;
    /// Copy `data` to the start of the int buffer `buf`.
    fn write_ints(&mut self, buf: Buf, data: &[i32]) -> Result<(), Self::Error>;
    /// The first `len` entries of `buf` as `f64`, after all work before this call is done.
    fn read(&mut self, buf: Buf, len: usize) -> Result<Vec<f64>, Self::Error>;
    /// The first `len` entries of the int buffer `buf`, after all work before it is done.
    fn read_ints(&mut self, buf: Buf, len: usize) -> Result<Vec<i32>, Self::Error>;
    /// Launch entry point `entry` over `grid` blocks of `block` threads, binding `args` (from
    /// [`super::args::args`]) to the device's buffers and `batch`.
    fn launch(&mut self, entry: &str, grid: u32, block: u32, args: &[Arg], batch: i32) -> Result<(), Self::Error>;
    /// Wait until all work issued so far is done.
    fn sync(&mut self) -> Result<(), Self::Error>;
    /// The most threads per block entry point `entry` can be launched with (on a GPU its
    /// registers per thread decide: `CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK`).
    fn max_block(&mut self, entry: &str) -> Result<u32, Self::Error>;
}

/// `f32` / `f64` as the kernels take them.
pub(crate) trait KernelReal: Copy + Send + 'static {
    /// Rounded from `f64`.
    fn from_f64(v: f64) -> Self;
    /// Widened to `f64`.
    fn to_f64(self) -> f64;
}

impl KernelReal for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl KernelReal for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// Threads (problems) per block for the one-thread-per-problem kernels, warps (problems) per
/// block for the warp layout, problems per block for the three-stage layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocks {
    /// One thread per problem (single launch, backward, the three-stage layout's problems).
    pub threads: u32,
    /// Warps per block of the warp-per-problem layout.
    pub warps: u32,
}

impl Blocks {
    /// The blocks of a forward solve in `layout` (the three-stage layout's line search runs
    /// NLS threads per problem, so fewer problems per block there).
    pub fn forward(layout: KernelLayout) -> Blocks {
        let threads = if layout == KernelLayout::ThreeStage { STAGED_BLOCK } else { BLOCK_SIZE };
        Blocks { threads, warps: WARPS_PER_BLOCK }
    }

    /// The blocks of a backward pass (one thread per problem).
    pub fn backward() -> Blocks {
        Blocks { threads: BLOCK_SIZE, warps: WARPS_PER_BLOCK }
    }
}

/// Check model parameters for kernel `k` before they are kept: finite, and one set (NP) or,
/// with per-problem parameters, a whole number of sets (B×NP, checked against each batch).
pub(crate) fn check_params(k: &RenderedKernel, params: &[f64]) -> Result<(), String> {
    if let Some(i) = params.iter().position(|v| !v.is_finite()) {
        return Err(format!("params[{i}] is not finite ({})", params[i]));
    }
    let np = k.np;
    if !params.len().is_multiple_of(np.max(1)) || (!k.per_problem_params && params.len() != np) {
        return Err(format!(
            "{} parameters: the kernel takes {}",
            params.len(),
            if k.per_problem_params { format!("B×{np}") } else { np.to_string() }
        ));
    }
    Ok(())
}

/// Launch shapes and state sizes of the three-stage layout for `b` problems, `block`
/// problems per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StagedPlan {
    /// Iteration state per problem: reals, ints.
    pub reals: usize,
    pub ints: usize,
    /// Most rounds a solve can take (a guard against a kernel bug).
    pub max_rounds: usize,
    /// (grid, block) of the one-thread-per-problem kernels (init, riccati, finish).
    pub per_problem: (u32, u32),
    /// (grid, block) of the linearisation, one thread per (problem, dynamics stage).
    pub per_stage: (u32, u32),
    /// (grid, block) of the line search, one thread per (problem, step), `block × NLS` per block.
    pub per_step: (u32, u32),
}

impl StagedPlan {
    /// The plan for `b` problems, `block` problems per block, where the kernels allow at most
    /// `max_block` threads per block and the line search `max_ls_block` (registers decide).
    pub fn new(k: &RenderedKernel, b: usize, block: u32, max_block: u32, max_ls_block: u32) -> Result<Self, String> {
        let (reals, ints) = staged_state_len(k.nx, k.nu, k.horizon, k.nls);
        let ndyn = k.horizon.saturating_sub(1).max(1);
        let nls = k.nls.max(1);
        let grid = |threads: usize, blk: usize| -> Result<(u32, u32), String> {
            let g = threads.div_ceil(blk);
            let g = u32::try_from(g).map_err(|_| format!("{threads} threads do not fit a grid"))?;
            Ok((g, blk as u32))
        };
        if i32::try_from(b.saturating_mul(ndyn.max(nls))).is_err() {
            return Err(format!("{b} problems are too many for the three-stage kernels' int indices"));
        }
        let block = block.clamp(1, max_block.clamp(1, 1024)) as usize;
        // The line search needs whole problems per block: block × NLS threads, at most what
        // the kernel allows.
        let ls_max = max_ls_block.min(1024) as usize;
        if ls_max < nls {
            return Err(format!(
                "the line-search kernel runs {nls} threads per problem but allows only {ls_max} per block \
                 (registers per thread); use fewer line-search steps or another layout"
            ));
        }
        let ls_block = block.min(ls_max / nls).max(1) * nls;
        Ok(StagedPlan {
            reals,
            ints,
            max_rounds: k.max_rounds,
            per_problem: grid(b, block)?,
            per_stage: grid(b * ndyn, block)?,
            per_step: grid(b * nls, ls_block)?,
        })
    }
}

/// Per-problem, per-stage bounds (B×T×nu), `inf` where unbounded (the kernels' layout).
pub(crate) fn expand_bound(bd: Bound<'_>, inf: f64, b: usize, t: usize, nu: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(b * t * nu);
    for i in 0..b {
        for st in 0..t {
            for j in 0..nu {
                out.push(match bd {
                    Bound::None => inf,
                    Bound::PerControl(s) => s[j],
                    Bound::PerStage(s) => s[(i * t + st) * nu + j],
                });
            }
        }
    }
    out
}

/// The size of every buffer a layout's solve (and the backward pass) binds for `b` problems:
/// what a device allocates once for its capacity.
pub(crate) fn buffer_sizes(k: &RenderedKernel, layout: KernelLayout, b: usize) -> Vec<(Buf, usize)> {
    let (t, nx, nu, n) = (k.horizon, k.nx, k.nu, k.nx + k.nu);
    let mut v = vec![
        (Buf::Params, k.params_len(b)),
        (Buf::XInit, b * nx),
        (Buf::CostHess, b * t * n * n),
        (Buf::CostLin, b * t * n),
        (Buf::ULo, b * t * nu),
        (Buf::UHi, b * t * nu),
        (Buf::UInit, b * t * nu),
        (Buf::XOut, b * t * nx),
        (Buf::UOut, b * t * nu),
        (Buf::CostOut, b),
        (Buf::ItersOut, b),
        (Buf::StatusOut, b),
    ];
    let state = match layout {
        KernelLayout::SingleLaunch => {
            v.push((Buf::Work, b * work_len(k)));
            None
        }
        KernelLayout::WarpPerProblem => Some(warp_state_len(nx, nu, t, k.nls)),
        KernelLayout::ThreeStage => Some(staged_state_len(nx, nu, t, k.nls)),
    };
    if let Some((reals, ints)) = state {
        v.extend([(Buf::State, b * reals), (Buf::IState, b * ints), (Buf::Active, 1)]);
    }
    v
}

/// The backward pass's own buffers for `b` problems (with dL/dθ).
pub(crate) fn backward_buffer_sizes(k: &RenderedKernel, b: usize) -> Vec<(Buf, usize)> {
    let (t, nx, nu, n) = (k.horizon, k.nx, k.nu, k.nx + k.nu);
    vec![
        (Buf::X, b * t * nx),
        (Buf::U, b * t * nu),
        (Buf::GradX, b * t * nx),
        (Buf::GradU, b * t * nu),
        (Buf::GradCostHess, b * t * n * n),
        (Buf::GradCostLin, b * t * n),
        (Buf::GradXInit, b * nx),
        (Buf::GradParams, b * k.np),
        (Buf::Work, b * work_len(k)),
    ]
}

fn batch_i32(b: usize) -> Result<i32, PlanError> {
    i32::try_from(b).map_err(|_| PlanError::Batch(format!("{b} problems do not fit an int")))
}

fn check_inputs(k: &RenderedKernel, params: &[f64], batch: &Batch<'_>) -> Result<(), PlanError> {
    batch.check(k.horizon, k.nx, k.nu).map_err(PlanError::Batch)?;
    if params.len() != k.params_len(batch.size) {
        return Err(PlanError::Batch(format!(
            "{} parameters given, the kernel takes {} ({} per {})",
            params.len(),
            k.params_len(batch.size),
            k.np,
            if k.per_problem_params { "problem" } else { "batch" }
        )));
    }
    Ok(())
}

/// Upload the inputs every solve layout reads (and the backward's problem data): parameters,
/// costs, expanded bounds, and for a solve the initial states and the warm start (null when
/// there is none: the kernels start from zeros).
fn upload_problem<D: KernelDevice>(dev: &mut D, k: &RenderedKernel, params: &[f64], batch: &Batch<'_>, solve: bool) -> Result<(), D::Error> {
    let (b, t, nu) = (batch.size, k.horizon, k.nu);
    for (buf, data) in [(Buf::Params, params), (Buf::CostHess, batch.cost_hess), (Buf::CostLin, batch.cost_lin)] {
        dev.ensure(buf, data.len())?;
        dev.write(buf, data)?;
    }
    for (buf, bound, inf) in [(Buf::ULo, batch.u_lower, f64::NEG_INFINITY), (Buf::UHi, batch.u_upper, f64::INFINITY)] {
        let v = expand_bound(bound, inf, b, t, nu);
        dev.ensure(buf, v.len())?;
        dev.write(buf, &v)?;
    }
    if solve {
        dev.ensure(Buf::XInit, batch.x_init.len())?;
        dev.write(Buf::XInit, batch.x_init)?;
        let u = batch.u_init.unwrap_or(&[]);
        dev.ensure(Buf::UInit, u.len())?;
        dev.write(Buf::UInit, u)?;
    }
    Ok(())
}

/// Solve `batch` with the kernels of `layout` (`kernels`: the solve kernel, the warp kernel, or
/// the three stage kernels in order) on `dev`. Returns the solution and where the time went
/// (`rounds`: the three-stage layout's host rounds, else 1).
pub(crate) fn solve<D: KernelDevice>(
    dev: &mut D,
    layout: KernelLayout,
    kernels: &[&RenderedKernel],
    params: &[f64],
    batch: &Batch<'_>,
    blocks: Blocks,
) -> Result<(Solution, LaunchTiming), D::Error> {
    let k = kernels.first().ok_or_else(|| PlanError::Batch("no kernels given".into()))?;
    check_inputs(k, params, batch)?;
    let b = batch.size;
    if b == 0 {
        return Ok((Solution::default(), LaunchTiming::default()));
    }
    let nb = batch_i32(b)?;
    let t0 = Instant::now();
    upload_problem(dev, k, params, batch, true)?;
    for (buf, len) in buffer_sizes(k, layout, b) {
        if !matches!(buf, Buf::Params | Buf::UInit) {
            dev.ensure(buf, len)?;
        }
    }
    dev.sync()?;
    let t1 = Instant::now();
    let mut rounds = 1;
    match layout {
        KernelLayout::SingleLaunch => {
            let block = blocks.threads.clamp(1, dev.max_block(&k.kernel)?.clamp(1, 1024)).min(b as u32);
            dev.launch(&k.kernel, (b as u32).div_ceil(block), block, args(KernelKind::Solve), nb)?;
        }
        KernelLayout::WarpPerProblem => {
            let most = dev.max_block(&k.kernel)? / 32;
            if most == 0 {
                return Err(PlanError::Batch(format!("{}: the kernel allows less than one warp per block", k.kernel)).into());
            }
            let warps = blocks.warps.clamp(1, most.min(32)).min(b as u32);
            dev.launch(&k.kernel, (b as u32).div_ceil(warps), 32 * warps, args(KernelKind::SolveWarp), nb)?;
        }
        KernelLayout::ThreeStage => {
            if kernels.len() != 3 {
                return Err(PlanError::Batch(format!("the three-stage layout takes 3 kernels, got {}", kernels.len())).into());
            }
            let e = |stage: usize, i: usize| kernels[stage].entries[i].as_str();
            let mut most = u32::MAX;
            for entry in [e(0, 0), e(0, 1), e(1, 0), e(2, 1)] {
                most = most.min(dev.max_block(entry)?);
            }
            let most_ls = dev.max_block(e(2, 0))?;
            let plan = StagedPlan::new(k, b, blocks.threads, most, most_ls).map_err(PlanError::Batch)?;
            let a = args(kernels[0].kind);
            let run = |dev: &mut D, entry: &str, (grid, block): (u32, u32)| dev.launch(entry, grid, block, a, nb);
            run(dev, e(0, 0), plan.per_problem)?;
            rounds = 0;
            loop {
                if rounds == plan.max_rounds {
                    return Err(PlanError::StillActive(rounds).into());
                }
                rounds += 1;
                run(dev, e(0, 1), plan.per_stage)?;
                run(dev, e(1, 0), plan.per_problem)?;
                dev.write_ints(Buf::Active, &[0])?;
                run(dev, e(2, 0), plan.per_step)?;
                if dev.read_ints(Buf::Active, 1)?[0] == 0 {
                    break;
                }
            }
            run(dev, e(2, 1), plan.per_problem)?;
        }
    }
    dev.sync()?;
    let t2 = Instant::now();
    let (t, nx, nu) = (k.horizon, k.nx, k.nu);
    let sol = super::kernel_solution(
        dev.read(Buf::XOut, b * t * nx)?,
        dev.read(Buf::UOut, b * t * nu)?,
        dev.read(Buf::CostOut, b)?,
        &dev.read_ints(Buf::ItersOut, b)?,
        &dev.read_ints(Buf::StatusOut, b)?,
    )
    .map_err(PlanError::Output)?;
    let t3 = Instant::now();
    Ok((sol, LaunchTiming { upload: t1 - t0, kernel: t2 - t1, download: t3 - t2, rounds }))
}

/// What the backward pass reads besides the problem.
pub(crate) struct BackwardInputs<'a> {
    /// The forward solution (x: B×T×nx, u: B×T×nu).
    pub sol: &'a Solution,
    /// dL/dx*, B×T×nx.
    pub grad_x: &'a [f64],
    /// dL/du*, B×T×nu.
    pub grad_u: &'a [f64],
    /// Compute dL/dθ too (else the kernel gets a null `grad_params`).
    pub params: bool,
}

/// Gradients at `inp.sol` by the backward kernel `k` on `dev`, one thread per problem in blocks
/// of `blocks.threads`, masked by the CPU solver's rule ([`super::kernel_gradients`]).
pub(crate) fn backward<D: KernelDevice>(
    dev: &mut D,
    k: &RenderedKernel,
    params: &[f64],
    batch: &Batch<'_>,
    inp: &BackwardInputs<'_>,
    blocks: Blocks,
) -> Result<(Gradients, LaunchTiming), D::Error> {
    check_inputs(k, params, batch)?;
    let (b, t, nx, nu) = (batch.size, k.horizon, k.nx, k.nu);
    let n = nx + nu;
    for (name, len, want) in [
        ("solution x", inp.sol.x.len(), b * t * nx),
        ("solution u", inp.sol.u.len(), b * t * nu),
        ("grad_x", inp.grad_x.len(), b * t * nx),
        ("grad_u", inp.grad_u.len(), b * t * nu),
    ] {
        if len != want {
            return Err(PlanError::Batch(format!("{name}: expected {want} entries, got {len}")).into());
        }
    }
    if b == 0 {
        return Ok((Gradients::default(), LaunchTiming::default()));
    }
    let nb = batch_i32(b)?;
    let want_params = inp.params && k.np > 0;
    let t0 = Instant::now();
    upload_problem(dev, k, params, batch, false)?;
    for (buf, data) in [(Buf::X, &inp.sol.x[..]), (Buf::U, &inp.sol.u[..]), (Buf::GradX, inp.grad_x), (Buf::GradU, inp.grad_u)] {
        dev.ensure(buf, data.len())?;
        dev.write(buf, data)?;
    }
    for (buf, len) in backward_buffer_sizes(k, b) {
        match buf {
            Buf::GradCostHess | Buf::GradCostLin | Buf::GradXInit | Buf::Work => dev.ensure(buf, len)?,
            Buf::GradParams => dev.ensure(buf, if want_params { len } else { 0 })?,
            _ => {}
        }
    }
    dev.sync()?;
    let t1 = Instant::now();
    let block = blocks.threads.clamp(1, dev.max_block(&k.kernel)?.clamp(1, 1024)).min(b as u32);
    dev.launch(&k.kernel, (b as u32).div_ceil(block), block, args(k.kind), nb)?;
    dev.sync()?;
    let t2 = Instant::now();
    let grads = super::kernel_gradients(
        dev.read(Buf::GradCostHess, b * t * n * n)?,
        dev.read(Buf::GradCostLin, b * t * n)?,
        dev.read(Buf::GradXInit, b * nx)?,
        if want_params { dev.read(Buf::GradParams, b * k.np)? } else { Vec::new() },
        inp.sol,
        t,
        nx,
        nu,
    );
    let t3 = Instant::now();
    Ok((grads, LaunchTiming { upload: t1 - t0, kernel: t2 - t1, download: t3 - t2, rounds: 1 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{KernelOptions, ModelCode, Precision, Stage, render_kernel};

    #[test]
    fn staged_plan_fits_the_kernels_limits() {
        let toy = "namespace mpc_model_toy {\nconstexpr int NX = 2; constexpr int NU = 1; constexpr int NP = 1;\n}\n";
        let m = ModelCode { name: "toy", cuda_source: toy, nx: 2, nu: 1, np: 1, is_linear: false };
        let k = render_kernel(&m, KernelKind::Stage(Stage::Rollout), &KernelOptions::new(10, Precision::F64)).unwrap();
        let nls = k.nls as u32;
        assert!(nls > 1);
        // Unlimited: 64 problems per block, the line search 64 × NLS threads capped at 1024.
        let p = StagedPlan::new(&k, 1000, 64, 1024, 1024).unwrap();
        assert_eq!(p.per_problem, (1000u32.div_ceil(64), 64));
        assert_eq!(p.per_step.1 % nls, 0);
        assert!(p.per_step.1 <= 1024 && p.per_step.0 * p.per_step.1 >= 1000 * nls);
        // A register-heavy line search (at most 3 × NLS threads per block): 3 problems per block.
        let p = StagedPlan::new(&k, 1000, 64, 1024, 3 * nls + 1).unwrap();
        assert_eq!(p.per_step, (1000u32.div_ceil(3), 3 * nls));
        // Fewer threads than one problem needs: a clear error, not a failed launch.
        let e = StagedPlan::new(&k, 1000, 64, 1024, nls - 1).unwrap_err();
        assert!(e.contains("line-search"), "{e}");
        // The other kernels' limit caps problems per block.
        assert_eq!(StagedPlan::new(&k, 1000, 64, 32, 1024).unwrap().per_problem.1, 32);
    }

    #[test]
    fn bounds_expand_to_kernel_layout() {
        assert_eq!(expand_bound(Bound::PerControl(&[1.0, 2.0]), 0.0, 2, 1, 2), [1.0, 2.0, 1.0, 2.0]);
        assert_eq!(expand_bound(Bound::None, f64::INFINITY, 1, 2, 1), [f64::INFINITY; 2]);
        assert_eq!(expand_bound(Bound::PerStage(&[1.0, 2.0, 3.0, 4.0]), 0.0, 2, 2, 1), [1.0, 2.0, 3.0, 4.0]);
    }
}
