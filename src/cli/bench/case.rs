//! The timing engine: one (B, T) case, its backend, its upstream gradients and its timed repetitions.

use super::args::BenchArgs;
use super::stats::{Stats, stats_ms};
use super::sysload::cpu_ticks;
use indicatif::ProgressBar;
use mpc_cuda::render::KernelLayout;
use mpc_cuda::select::{self, Choice, Needs};
use mpc_models::Quadrotor;
use mpc_models::scenarios::quadrotor_hover;
use mpc_runtime::{Backend, BackendKind, Batch, Bound, Gradients, Model, Solution, Solver, SolverOptions};
use std::time::{Duration, Instant};

/// SplitMix64 standard normals (the upstream gradients; no extra crate).
fn normals(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed ^ 0x5851_f42d_4c95_7f2d;
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (1.0 - next(), next());
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

/// One (B, T) case's measurements.
pub(super) struct CaseResult {
    pub(super) b: usize,
    pub(super) t: usize,
    pub(super) reps: usize,
    pub(super) forward: Stats,
    pub(super) backward: Stats,
    /// CUDA: kernel-only forward and backward times.
    pub(super) kernel: Option<(Stats, Stats)>,
    /// CUDA: largest differences to the CPU solver (x, u, cost rel., gradients rel.), when run.
    pub(super) check: Option<[f64; 4]>,
    /// CUDA: the forward layout that ran.
    pub(super) layout: Option<String>,
    /// Per-round (forward, backward) medians, ms.
    pub(super) round_medians: Vec<(f64, f64)>,
    pub(super) iterations_mean: f64,
    pub(super) iterations_max: usize,
    pub(super) converged: usize,
    pub(super) cost_mean: f64,
    pub(super) grad_abs_max: f64,
    pub(super) busy_before: Option<f64>,
    pub(super) busy_during: Option<f64>,
    pub(super) waited_s: f64,
    pub(super) load_before: Option<[f64; 3]>,
    pub(super) load_after: Option<[f64; 3]>,
}

/// What runs a case: a backend (the CPU solver or the CUDA solver), its kernel layout and,
/// on the GPU, the kernel-only samples and the check against the CPU.
struct Engine {
    backend: Box<dyn Backend>,
    layout: Option<KernelLayout>,
    fwd_kernel: Vec<Duration>,
    bwd_kernel: Vec<Duration>,
    check: Option<[f64; 4]>,
}

/// One (B, T) case: its data, its solver (built once) and the samples so far.
pub(super) struct Case {
    pub(super) b: usize,
    pub(super) t: usize,
    sc: mpc_models::scenarios::QuadrotorHover,
    grad_x: Vec<f64>,
    grad_u: Vec<f64>,
    engine: Engine,
    opts: SolverOptions,
    sol: Solution,
    grads: Gradients,
    pub(super) fwd: Vec<Duration>,
    pub(super) bwd: Vec<Duration>,
    round_medians: Vec<(f64, f64)>,
    pub(super) busy_before: Option<f64>,
    pub(super) waited_s: f64,
    others_ticks: f64,
    window_ticks: f64,
    pub(super) load_before: Option<[f64; 3]>,
    pub(super) load_after: Option<[f64; 3]>,
}

impl Case {
    /// Build the problem data, the upstream gradients and the solver (for CUDA: render,
    /// compile and load both kernels and allocate the device buffers, all before timing).
    pub(super) fn new(args: &BenchArgs, opts: &SolverOptions, b: usize, t: usize, cuda: bool) -> Result<Self, String> {
        let model = Quadrotor::default();
        let mut sc = quadrotor_hover(&model, b, t, args.seed);
        // The problem data as the Python package (and numpy) hold arrays of this size: in
        // huge-page-advised memory.
        for v in [&mut sc.x_init, &mut sc.cost_c, &mut sc.cost_q, &mut sc.u_init] {
            *v = mpc_runtime::pages::copy_of(v);
        }
        let choice = if cuda {
            let layout = select::layout_for(b, &Needs { layout: args.layout.forced(), ..Needs::default() });
            Choice { kind: BackendKind::Cuda, layout: Some(layout), reason: String::new() }
        } else {
            Choice { kind: BackendKind::Cpu, layout: None, reason: String::new() }
        };
        // Kernels (forward and backward) are compiled and loaded here, before any timing.
        let backend = select::build(&choice, &model, t, opts, b).map_err(|e| format!("B={b} T={t}: {} backend: {e}", choice.kind.name()))?;
        let engine = Engine { backend, layout: choice.layout, fwd_kernel: Vec::new(), bwd_kernel: Vec::new(), check: None };
        Ok(Case {
            b,
            t,
            sc,
            grad_x: normals(args.seed.wrapping_add(1), b * t * Quadrotor::NX),
            grad_u: normals(args.seed.wrapping_add(2), b * t * Quadrotor::NU),
            engine,
            opts: opts.clone(),
            sol: Solution::default(),
            grads: Gradients::default(),
            fwd: Vec::with_capacity(args.reps),
            bwd: Vec::with_capacity(args.reps),
            round_medians: Vec::new(),
            busy_before: None,
            waited_s: 0.0,
            others_ticks: 0.0,
            window_ticks: 0.0,
            load_before: None,
            load_after: None,
        })
    }

    fn batch(&self) -> Batch<'_> {
        Batch {
            size: self.b,
            x_init: &self.sc.x_init,
            cost_hess: &self.sc.cost_c,
            cost_lin: &self.sc.cost_q,
            u_lower: Bound::PerControl(Quadrotor::CONTROL_LOWER),
            u_upper: Bound::PerControl(Quadrotor::CONTROL_UPPER),
            u_init: Some(&self.sc.u_init),
        }
    }

    /// CUDA: compare the current GPU solution and gradients with the CPU solver's (B ≤ 4096):
    /// max |dx|, max |du|, max cost difference relative to max(1, |cost|), max gradient
    /// difference relative to max(1, max |CPU gradient|).
    pub(super) fn check_against_cpu(&mut self) {
        if self.b > 4096 {
            return;
        }
        let mut cpu = Solver::new(Quadrotor::default(), self.t, self.opts.clone());
        let batch = self.batch();
        let sol = cpu.solve(&batch);
        let g = cpu.backward(&batch, &sol, &self.grad_x, &self.grad_u);
        let max_abs = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f64, |m, d| if d.is_nan() { f64::NAN } else { m.max(d) });
        let cost = self.sol.cost.iter().zip(&sol.cost).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0f64, f64::max);
        let scale = g.cost_hess.iter().chain(&g.cost_lin).chain(&g.x_init).fold(1.0f64, |m, v| m.max(v.abs()));
        let grad = max_abs(&self.grads.cost_hess, &g.cost_hess)
            .max(max_abs(&self.grads.cost_lin, &g.cost_lin))
            .max(max_abs(&self.grads.x_init, &g.x_init))
            / scale;
        let r = [max_abs(&self.sol.x, &sol.x), max_abs(&self.sol.u, &sol.u), cost, grad];
        if self.engine.backend.kind() == BackendKind::Cuda {
            self.engine.check = Some(r);
        }
    }

    /// `n` forward+backward pairs; timed ones are recorded (stopping early once the case
    /// has spent `budget` in total and holds at least 5 samples).
    pub(super) fn reps(&mut self, n: usize, timed: bool, budget: Duration, pb: &ProgressBar) -> Result<(), String> {
        let batch = Batch {
            size: self.b,
            x_init: &self.sc.x_init,
            cost_hess: &self.sc.cost_c,
            cost_lin: &self.sc.cost_q,
            u_lower: Bound::PerControl(Quadrotor::CONTROL_LOWER),
            u_upper: Bound::PerControl(Quadrotor::CONTROL_UPPER),
            u_init: Some(&self.sc.u_init),
        };
        let spent: Duration = self.fwd.iter().chain(&self.bwd).sum();
        let ticks0 = cpu_ticks();
        let start = Instant::now();
        let first = self.fwd.len();
        let (b, t) = (self.b, self.t);
        for _ in 0..n {
            let e = &mut self.engine;
            let t0 = Instant::now();
            e.backend.try_solve_into(&batch, &mut self.sol).map_err(|err| format!("B={b} T={t}: solve: {err}"))?;
            let t1 = Instant::now();
            let kf = e.backend.last_kernel_time();
            e.backend
                .try_backward_into(&batch, &self.sol, &self.grad_x, &self.grad_u, &mut self.grads)
                .map_err(|err| format!("B={b} T={t}: backward: {err}"))?;
            let t2 = Instant::now();
            if let (true, Some(kf), Some(kb)) = (timed, kf, e.backend.last_kernel_time()) {
                e.fwd_kernel.push(kf);
                e.bwd_kernel.push(kb);
            }
            if timed {
                self.fwd.push(t1 - t0);
                self.bwd.push(t2 - t1);
                pb.inc(1);
                if self.fwd.len() >= 5 && spent + start.elapsed() > budget {
                    break;
                }
            }
        }
        if timed && self.fwd.len() > first {
            let (f, b) = (stats_ms(&self.fwd[first..]).median, stats_ms(&self.bwd[first..]).median);
            self.round_medians.push((f, b));
            if let (Some((b0, t0, o0)), Some((b1, t1, o1))) = (ticks0, cpu_ticks()) {
                let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                self.others_ticks += ((b1 - b0) - (o1 - o0)).max(0.0);
                self.window_ticks += (t1 - t0) / ncpu;
            }
        }
        Ok(())
    }

    /// Order statistics and checks of the samples.
    pub(super) fn finish(&self) -> Result<CaseResult, String> {
        let (b, t, sol, grads) = (self.b, self.t, &self.sol, &self.grads);
        let grad_abs_max =
            grads.cost_hess.iter().chain(&grads.cost_lin).chain(&grads.x_init).fold(0.0f64, |m, v| if v.is_finite() { m.max(v.abs()) } else { f64::NAN });
        if !sol.cost.iter().all(|c| c.is_finite()) || !grad_abs_max.is_finite() {
            return Err(format!("B={b} T={t}: non-finite cost or gradient"));
        }
        let e = &self.engine;
        let kernel = (e.backend.kind() == BackendKind::Cuda).then(|| (stats_ms(&e.fwd_kernel), stats_ms(&e.bwd_kernel)));
        let (check, layout) = (e.check, e.layout.map(|l| format!("{l:?}")));
        Ok(CaseResult {
            b,
            t,
            reps: self.fwd.len(),
            forward: stats_ms(&self.fwd),
            backward: stats_ms(&self.bwd),
            kernel,
            check,
            layout,
            round_medians: self.round_medians.clone(),
            iterations_mean: sol.iterations.iter().sum::<usize>() as f64 / b as f64,
            iterations_max: sol.iterations.iter().copied().max().unwrap_or(0),
            converged: sol.converged.iter().filter(|&&c| c).count(),
            cost_mean: sol.cost.iter().sum::<f64>() / b as f64,
            grad_abs_max,
            busy_before: self.busy_before,
            // Below ~0.5 s of samples the 10 ms ticks of /proc/stat say nothing.
            busy_during: (self.window_ticks >= 50.0).then(|| self.others_ticks / self.window_ticks),
            waited_s: self.waited_s,
            load_before: self.load_before,
            load_after: self.load_after,
        })
    }
}
