//! `mpc bench`: solver timings on the CA-AC-MPC Table II task, side by side with mpc.pytorch.
//!
//! The task is the quadrotor stabilising at random hover targets
//! ([`mpc_models::scenarios::quadrotor_hover`]: the cost and start distribution of
//! `models.md`, "Fixture / benchmark cost", warm start at hover), float64, control bounds
//! thrust ∈ [0, 34], rates ∈ ±(10, 10, 4). The protocol follows
//! `shared/peer-bench/bench_mpc_pytorch.py`, which measured mpc.pytorch on the same machine:
//!
//! * a **fixed** number of iLQR iterations `K` (`--iters`, default 5): the convergence
//!   tolerance is the smallest positive `f64`, so a problem stops early only when its control
//!   update is exactly zero (mpc.pytorch runs with `eps = 0`); the iterations actually run
//!   are reported;
//! * **forward** = one [`Solver::solve_into`] of the whole batch (the solver and every buffer
//!   are built before the timed region; mpc.pytorch's figure also contains its autograd-graph
//!   construction);
//! * **backward** = one [`Solver::backward_into`] at that solution with fixed upstream
//!   gradients `grad_x`, `grad_u ~ N(0, 1)` (the peer's loss `Σ w_x·x + Σ w_u·u`), giving
//!   `dL/dC`, `dL/dc`, `dL/dx_init`;
//! * `--warmup` untimed forward+backward pairs, then `--reps` timed pairs (fewer when a case
//!   exceeds `--budget-s`, never fewer than 5), spread over `--rounds` passes through the
//!   grid so that a slow spell of a shared machine affects every case alike; wall-clock
//!   times; median, p10/p90, min/max over all timed pairs, and the median of each round;
//! * the rayon pool has `--threads` threads (mpc.pytorch was measured with 2);
//! * the cores kept busy by other processes before (and, from `/proc/stat` less this
//!   process's own CPU time, during) each case are recorded: on a shared machine they explain
//!   outliers. `--wait-idle` waits for a quiet machine first.
//!
//! The ratio to mpc.pytorch uses `results-mpc-pytorch-cpu.json` (`--peer`, or found next to the
//! repository in `shared/peer-bench/`), else the figures of that file embedded here.
//!
//! `--backend cuda` times the same grid on GPU 0 through `mpc_cuda::CudaSolver` (the
//! rendered single-launch solve kernel and the backward kernel, double precision): forward =
//! one `CudaSolver::solve` (inputs converted and copied in, the kernel, results copied back),
//! backward = one `CudaSolver::backward`, both end to end from host arrays to host arrays; the
//! kernel-only times (host clock around the launch and its synchronisation) are recorded
//! beside them. The kernels are compiled before the timed region. Each case's GPU solution and
//! gradients are compared once with the CPU solver's (B ≤ 4096). The JSON records the GPU, its
//! compute capability and the driver. Without a usable driver `--backend cuda` exits with
//! status 2; `--backend auto` then times the CPU and says so. `--large` adds B = 4096 and
//! 65536 to the batch sizes. The GPU path has not yet run on hardware (written on a machine
//! without one; `scripts/gpu-checks.sh` runs it).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mpc_models::Quadrotor;
use mpc_models::scenarios::quadrotor_hover;
use mpc_cuda::render::KernelLayout;
use mpc_cuda::select::{self, Choice, Needs, Preference};
use mpc_runtime::{Backend, BackendKind, Batch, Bound, GradientMode, Gradients, LineSearchRule, Model, Solution, Solver, SolverOptions};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Arguments of `mpc bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Batch sizes B (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,256", value_name = "B,..")]
    pub batch: Vec<usize>,
    /// Horizons T (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "2,10,50", value_name = "T,..")]
    pub horizon: Vec<usize>,
    /// iLQR iterations per solve, fixed (no early convergence stop).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Timed forward+backward repetitions per (B, T).
    #[arg(long, default_value_t = 200)]
    pub reps: usize,
    /// The timed repetitions of every (B, T) are spread over this many rounds through the
    /// whole grid, so that a slow spell of a shared machine hits every case alike.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Untimed forward+backward repetitions before the timed ones.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Time budget per (B, T) in seconds: repetitions stop once it is spent (at least 5 run).
    #[arg(long, default_value_t = 30.0)]
    pub budget_s: f64,
    /// Threads of the rayon pool the solver runs in (mpc.pytorch was measured with 2).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Backend to time: `cpu`, `cuda` (GPU 0; exit status 2 when there is none) or `auto`
    /// (`cuda` when a driver and GPU are present, else `cpu`, said on stderr).
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    pub backend: BackendArg,
    /// Add the large batches B = 4096 and 65536 to `--batch` (meant for `--backend cuda`).
    #[arg(long)]
    pub large: bool,
    /// CUDA thread layout of the forward solve.
    #[arg(long, value_enum, default_value_t = LayoutArg::SingleLaunch)]
    pub layout: LayoutArg,
    /// Hessian of the backward pass (mpc.pytorch uses Gauss-Newton).
    #[arg(long, value_enum, default_value_t = GradientArg::GaussNewton)]
    pub gradient: GradientArg,
    /// Line search: `paper` = steps 1, 0.5, 0.25, 0.1, best kept (CA-DiffMPC's steps, the
    /// solver's default); `pytorch` = steps 0.2^i, i < 5, first decrease kept (the peer's
    /// `linesearch_decay = 0.2`, `max_linesearch_iter = 5`).
    #[arg(long, value_enum, default_value_t = LineSearchArg::Paper)]
    pub line_search: LineSearchArg,
    /// Seed of the problem data and of the upstream gradients.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the results as JSON here.
    #[arg(long, value_name = "OUT.json")]
    pub json: Option<PathBuf>,
    /// mpc.pytorch results (`results-mpc-pytorch-cpu.json`); searched next to the repository
    /// when absent, embedded figures as the fallback.
    #[arg(long, value_name = "PEER.json")]
    pub peer: Option<PathBuf>,
    /// Before each (B, T), wait at most this many seconds until other processes keep fewer
    /// than `--idle-cores` cores busy.
    #[arg(long, default_value_t = 0.0)]
    pub wait_idle: f64,
    /// Busy-core threshold of `--wait-idle`.
    #[arg(long, default_value_t = 0.3)]
    pub idle_cores: f64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Backends `mpc bench` knows.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendArg {
    /// The CPU solver (`mpc_runtime::solver`).
    Cpu,
    /// The CUDA kernels on GPU 0 (`mpc_cuda::CudaSolver`).
    Cuda,
    /// CUDA when a driver and a GPU are present, else the CPU.
    Auto,
}

/// `--layout` values (see `mpc_cuda::render::KernelLayout`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutArg {
    /// All K iterations in one launch, one thread per problem.
    SingleLaunch,
    /// The paper's three stages per iteration, launched from the host.
    ThreeStage,
    /// All K iterations in one launch, one warp per problem.
    Warp,
    /// Per batch size, the rule of `KernelLayout::auto` (warp per problem for small batches).
    Auto,
}

impl LayoutArg {
    /// The layout forced by the flag; `None` for the automatic rule
    /// (`mpc_cuda::select::layout_for`).
    fn forced(self) -> Option<KernelLayout> {
        match self {
            LayoutArg::SingleLaunch => Some(KernelLayout::SingleLaunch),
            LayoutArg::ThreeStage => Some(KernelLayout::ThreeStage),
            LayoutArg::Warp => Some(KernelLayout::WarpPerProblem),
            LayoutArg::Auto => None,
        }
    }
}

/// `--gradient` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradientArg {
    /// Cost Hessian only, as mpc.pytorch and CA-AC-MPC.
    GaussNewton,
    /// Full Lagrangian Hessian (true derivatives).
    Exact,
}

/// `--line-search` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineSearchArg {
    /// Steps 1, 0.5, 0.25, 0.1; the best one is kept.
    Paper,
    /// Steps 1, 0.2, 0.04, 0.008, 0.0016; the first decrease is kept.
    Pytorch,
}

/// mpc.pytorch 0.0.6 on this 2-core machine (`results-mpc-pytorch-cpu.json`, medians in ms):
/// `(B, T, forward, backward)`. Used when the file is not found.
const PEER_FALLBACK: &[(usize, usize, f64, f64)] = &[
    (1, 2, 54.26374700004999, 8.101173500108416),
    (1, 10, 200.98756349989344, 23.033034500031135),
    (1, 50, 865.3792464999697, 66.74243799989199),
    (256, 2, 211.75385499986987, 32.35910950002108),
    (256, 10, 571.3338979996934, 102.62490900004195),
    (256, 50, 1768.9707839999755, 326.67878900019787),
];

/// Peer medians per (B, T) and where they came from.
struct Peer {
    source: String,
    rows: Vec<(usize, usize, f64, f64)>,
}

impl Peer {
    fn get(&self, b: usize, t: usize) -> Option<(f64, f64)> {
        self.rows.iter().find(|r| r.0 == b && r.1 == t).map(|r| (r.2, r.3))
    }
}

fn parse_peer(path: &Path) -> Result<Peer, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let rows = v["rows"].as_array().ok_or_else(|| format!("{}: no `rows` array", path.display()))?;
    let mut out = Vec::new();
    for r in rows {
        let (Some(b), Some(t), Some(f), Some(bw)) = (
            r["B"].as_u64(),
            r["T"].as_u64(),
            r["forward_ms"]["median"].as_f64(),
            r["backward_ms"]["median"].as_f64(),
        ) else {
            return Err(format!("{}: a row lacks B, T or a median", path.display()));
        };
        out.push((b as usize, t as usize, f, bw));
    }
    Ok(Peer { source: path.display().to_string(), rows: out })
}

/// The peer results: `--peer`, else the first `shared/peer-bench/results-mpc-pytorch-cpu.json`
/// found next to the repository or the working directory, else the embedded figures.
fn load_peer(explicit: Option<&Path>) -> Result<Peer, String> {
    if let Some(p) = explicit {
        return parse_peer(p);
    }
    let rel = Path::new("shared/peer-bench/results-mpc-pytorch-cpu.json");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = vec![repo.join("..").join(rel), repo.join(rel)];
    if let Ok(cwd) = std::env::current_dir() {
        candidates.extend(cwd.ancestors().map(|d| d.join(rel)));
    }
    for c in candidates {
        if c.is_file()
            && let Ok(p) = parse_peer(&c)
        {
            let source = c.canonicalize().map(|p| p.display().to_string()).unwrap_or(p.source);
            return Ok(Peer { source, rows: p.rows });
        }
    }
    Ok(Peer { source: "embedded (results-mpc-pytorch-cpu.json not found)".into(), rows: PEER_FALLBACK.to_vec() })
}

/// Order statistics of a sample, in milliseconds.
#[derive(Clone, Copy, Debug)]
struct Stats {
    median: f64,
    mean: f64,
    min: f64,
    max: f64,
    p10: f64,
    p25: f64,
    p75: f64,
    p90: f64,
}

/// Linear-interpolation quantile of sorted data.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn stats_ms(samples: &[Duration]) -> Stats {
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    v.sort_by(f64::total_cmp);
    Stats {
        median: quantile(&v, 0.5),
        mean: v.iter().sum::<f64>() / v.len() as f64,
        min: v[0],
        max: v[v.len() - 1],
        p10: quantile(&v, 0.1),
        p25: quantile(&v, 0.25),
        p75: quantile(&v, 0.75),
        p90: quantile(&v, 0.9),
    }
}

impl Stats {
    fn to_json(self) -> Value {
        json!({"median": self.median, "mean": self.mean, "min": self.min, "max": self.max,
               "p10": self.p10, "p25": self.p25, "p75": self.p75, "p90": self.p90})
    }
}

/// 1-, 5-, 15-minute load averages.
fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let v: Vec<f64> = s.split_whitespace().take(3).filter_map(|x| x.parse().ok()).collect();
    (v.len() == 3).then(|| [v[0], v[1], v[2]])
}

/// Cores kept busy by the whole machine over `sample` (from `/proc/stat`, while this process
/// sleeps, so it counts other processes).
fn busy_cores(sample: Duration) -> Option<f64> {
    fn read() -> Option<(f64, f64)> {
        let s = std::fs::read_to_string("/proc/stat").ok()?;
        let v: Vec<f64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0.0);
        Some((v.iter().sum(), idle))
    }
    let (t0, i0) = read()?;
    std::thread::sleep(sample);
    let (t1, i1) = read()?;
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let total = t1 - t0;
    Some(if total > 0.0 { ncpu * (1.0 - (i1 - i0) / total) } else { 0.0 })
}

/// CPU time so far, in clock ticks: (whole machine busy, whole machine total, this process).
fn cpu_ticks() -> Option<(f64, f64, f64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<f64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0.0);
    let total: f64 = v.iter().sum();
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest: Vec<&str> = me.rsplit_once(')')?.1.split_whitespace().collect();
    let own = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    Some((total - idle, total, own))
}

/// Wait at most `max_s` until fewer than `threshold` cores are busy; (busy cores, waited s).
fn wait_idle(max_s: f64, threshold: f64) -> (Option<f64>, f64) {
    let t0 = Instant::now();
    loop {
        let busy = busy_cores(Duration::from_secs(1));
        let waited = t0.elapsed().as_secs_f64();
        match busy {
            Some(b) if b >= threshold && waited < max_s => std::thread::sleep(Duration::from_secs(2)),
            _ => return (busy, waited),
        }
    }
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split_once(':').map_or("", |x| x.1).trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// UTC date and time, ISO 8601, from the system clock (days-to-civil conversion).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

fn machine_info() -> Value {
    let repo = env!("CARGO_MANIFEST_DIR");
    let commit = command_output("git", &["-C", repo, "rev-parse", "HEAD"]);
    let dirty = command_output("git", &["-C", repo, "status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    json!({
        "cpu": cpu_model(),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "rustc": command_output("rustc", &["--version"]),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "git_commit": commit,
        "git_dirty": dirty,
    })
}

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
struct CaseResult {
    b: usize,
    t: usize,
    reps: usize,
    forward: Stats,
    backward: Stats,
    /// CUDA: kernel-only forward and backward times.
    kernel: Option<(Stats, Stats)>,
    /// CUDA: largest differences to the CPU solver (x, u, cost rel., gradients rel.), when run.
    check: Option<[f64; 4]>,
    /// CUDA: the forward layout that ran.
    layout: Option<String>,
    /// Per-round (forward, backward) medians, ms.
    round_medians: Vec<(f64, f64)>,
    iterations_mean: f64,
    iterations_max: usize,
    converged: usize,
    cost_mean: f64,
    grad_abs_max: f64,
    busy_before: Option<f64>,
    busy_during: Option<f64>,
    waited_s: f64,
    load_before: Option<[f64; 3]>,
    load_after: Option<[f64; 3]>,
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
struct Case {
    b: usize,
    t: usize,
    sc: mpc_models::scenarios::QuadrotorHover,
    grad_x: Vec<f64>,
    grad_u: Vec<f64>,
    engine: Engine,
    opts: SolverOptions,
    sol: Solution,
    grads: Gradients,
    fwd: Vec<Duration>,
    bwd: Vec<Duration>,
    round_medians: Vec<(f64, f64)>,
    busy_before: Option<f64>,
    waited_s: f64,
    others_ticks: f64,
    window_ticks: f64,
    load_before: Option<[f64; 3]>,
    load_after: Option<[f64; 3]>,
}

impl Case {
    /// Build the problem data, the upstream gradients and the solver (for CUDA: render,
    /// compile and load both kernels and allocate the device buffers, all before timing).
    fn new(args: &BenchArgs, opts: &SolverOptions, b: usize, t: usize, cuda: bool) -> Result<Self, String> {
        let model = Quadrotor::default();
        let sc = quadrotor_hover(&model, b, t, args.seed);
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
    fn check_against_cpu(&mut self) {
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
    fn reps(&mut self, n: usize, timed: bool, budget: Duration, pb: &ProgressBar) -> Result<(), String> {
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
    fn finish(&self) -> Result<CaseResult, String> {
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

/// `a / b` formatted as a speed-up factor.
fn ratio(peer: f64, ours: f64) -> String {
    let r = peer / ours;
    if r >= 100.0 { format!("{r:.0}×") } else { format!("{r:.1}×") }
}

/// A time in ms with three significant digits.
fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Markdown table of the results with the mpc.pytorch ratios (and, for CUDA, the kernel-only
/// medians).
fn table(results: &[CaseResult], peer: &Peer) -> String {
    let mut s = String::new();
    let cuda = results.iter().any(|r| r.kernel.is_some());
    s.push_str("| B | T | iters | forward median ms (p10–p90) | mpc.pytorch fwd ms | fwd speed-up | backward median ms (p10–p90) | mpc.pytorch bwd ms | bwd speed-up | reps | others' load |");
    s.push_str(if cuda { " kernel fwd / bwd ms |\n" } else { "\n" });
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    s.push_str(if cuda { "---:|\n" } else { "\n" });
    for r in results {
        let p = peer.get(r.b, r.t);
        let (pf, pfr, pb, pbr) = match p {
            Some((f, b)) => (ms(f), ratio(f, r.forward.median), ms(b), ratio(b, r.backward.median)),
            None => ("–".into(), "–".into(), "–".into(), "–".into()),
        };
        s.push_str(&format!(
            "| {} | {} | {:.1} | {} ({}–{}) | {} | {} | {} ({}–{}) | {} | {} | {} | {} |\n",
            r.b,
            r.t,
            r.iterations_mean,
            ms(r.forward.median),
            ms(r.forward.p10),
            ms(r.forward.p90),
            pf,
            pfr,
            ms(r.backward.median),
            ms(r.backward.p10),
            ms(r.backward.p90),
            pb,
            pbr,
            r.reps,
            r.busy_during.map_or("–".into(), |b| format!("{b:.2}"))
        ));
        if cuda {
            s.pop();
            match r.kernel {
                Some((f, b)) => s.push_str(&format!(" {} / {} |\n", ms(f.median), ms(b.median))),
                None => s.push_str(" – |\n"),
            }
        }
    }
    s
}

fn check_args(args: &BenchArgs) -> Result<(), String> {
    if args.batch.is_empty() || args.batch.contains(&0) {
        return Err("--batch: give batch sizes ≥ 1".into());
    }
    if args.horizon.is_empty() || args.horizon.contains(&0) {
        return Err("--horizon: give horizons ≥ 1".into());
    }
    if args.iters == 0 {
        return Err("--iters must be at least 1".into());
    }
    if args.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok(())
}

/// The GPU in a form for the JSON record: the driver's view of device 0 and `nvidia-smi`'s
/// driver version.
fn gpu_info() -> Value {
    let smi = command_output("nvidia-smi", &["--query-gpu=name,driver_version", "--format=csv,noheader", "--id=0"]);
    match mpc_cuda::device_info(0) {
        Ok(d) => json!({
            "name": d.name,
            "compute_capability": format!("{}.{}", d.compute_capability.0, d.compute_capability.1),
            "multiprocessors": d.multiprocessors,
            "memory_bytes": d.total_memory,
            "driver_cuda_version": format!("{}.{}", d.driver_cuda_version.0, d.driver_cuda_version.1),
            "nvidia_smi": smi,
            "driver_version": smi.as_deref().and_then(|s| s.rsplit(',').next()).map(|v| v.trim().to_string()),
            "nvrtc_version": mpc_cuda::nvrtc_version().ok().map(|(a, b)| format!("{a}.{b}")),
        }),
        Err(e) => json!({"error": e.to_string(), "nvidia_smi": smi}),
    }
}

/// Run `mpc bench`.
pub fn run(mut args: BenchArgs) -> ExitCode {
    if let Err(e) = check_args(&args) {
        eprintln!("mpc bench: {e}");
        return ExitCode::from(2);
    }
    // Which backend runs: the one rule of `mpc_cuda::select`, as `mpc solve`.
    let pref = match args.backend {
        BackendArg::Cpu => Preference::Cpu,
        BackendArg::Cuda => Preference::Cuda,
        BackendArg::Auto => Preference::Auto,
    };
    let cuda = match select::choose(pref, 1, &Needs::default()) {
        Ok(c) => {
            if args.backend == BackendArg::Auto {
                eprintln!("mpc bench: --backend auto: using {} ({})", c.kind.name(), c.reason);
            }
            c.kind == BackendKind::Cuda
        }
        Err(e) => {
            eprintln!("mpc bench: --backend cuda: {e}");
            return ExitCode::from(2);
        }
    };
    if args.large {
        for b in [4096, 65536] {
            if !args.batch.contains(&b) {
                args.batch.push(b);
            }
        }
        if !cuda {
            eprintln!("mpc bench: --large on the CPU backend: B = 65536 takes minutes per repetition here");
        }
    }
    let peer = match load_peer(args.peer.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mpc bench: --peer: {e}");
            return ExitCode::from(2);
        }
    };
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(args.threads).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mpc bench: cannot build a {}-thread pool: {e}", args.threads);
            return ExitCode::FAILURE;
        }
    };
    let (line_search, rule) = match args.line_search {
        LineSearchArg::Paper => (vec![1.0, 0.5, 0.25, 0.1], LineSearchRule::Best),
        LineSearchArg::Pytorch => ((0..5).map(|i| 0.2f64.powi(i)).collect(), LineSearchRule::FirstDecrease),
    };
    let opts = SolverOptions {
        max_iters: args.iters,
        eps: f64::MIN_POSITIVE,
        line_search,
        line_search_rule: rule,
        gradient: match args.gradient {
            GradientArg::GaussNewton => GradientMode::GaussNewton,
            GradientArg::Exact => GradientMode::Exact,
        },
        // mpc.pytorch computes no optimality residual: equal work (and K fixed iterations).
        report_kkt: false,
        ..SolverOptions::default()
    };

    let cases: Vec<(usize, usize)> = args.batch.iter().flat_map(|&b| args.horizon.iter().map(move |&t| (b, t))).collect();
    let pb = ProgressBar::with_draw_target(
        Some((cases.len() * args.reps) as u64),
        if args.quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() },
    );
    pb.set_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} reps, {elapsed_precise} (eta {eta})")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = utc_now();
    let t_start = Instant::now();
    let mut states = Vec::with_capacity(cases.len());
    for &(b, t) in &cases {
        match Case::new(&args, &opts, b, t, cuda) {
            Ok(c) => states.push(c),
            Err(e) => {
                pb.abandon();
                eprintln!("mpc bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let rounds = args.rounds.clamp(1, args.reps);
    let budget = Duration::from_secs_f64(args.budget_s.max(0.0));
    for round in 0..rounds {
        let n = args.reps * (round + 1) / rounds - args.reps * round / rounds;
        for c in &mut states {
            pb.set_prefix(format!("B={} T={} ({}/{rounds})", c.b, c.t, round + 1));
            if c.fwd.len() >= 5 && c.fwd.iter().chain(&c.bwd).sum::<Duration>() > budget {
                continue;
            }
            if args.wait_idle > 0.0 {
                let (busy, waited) = wait_idle(args.wait_idle, args.idle_cores);
                if round == 0 {
                    c.busy_before = busy;
                }
                c.waited_s += waited;
            } else if round == 0 {
                c.busy_before = busy_cores(Duration::from_millis(300));
            }
            if round == 0 {
                c.load_before = loadavg();
            }
            let done = pool.install(|| {
                if round == 0 {
                    // Warm-up (also sizes every buffer: the timed reps allocate nothing).
                    c.reps(args.warmup.max(1), false, budget, &pb)?;
                    if cuda {
                        c.check_against_cpu();
                    }
                }
                c.reps(n, true, budget, &pb)
            });
            if let Err(e) = done {
                pb.abandon();
                eprintln!("mpc bench: {e}");
                return ExitCode::FAILURE;
            }
            c.load_after = loadavg();
        }
    }
    let mut results = Vec::new();
    for c in &states {
        match c.finish() {
            Ok(r) => {
                let vs = peer.get(r.b, r.t).map_or(String::new(), |(f, bw)| {
                    format!(" (mpc.pytorch ×{:.0} / ×{:.0})", f / r.forward.median, bw / r.backward.median)
                });
                let msg = format!(
                    "B={} T={}: forward {} ms, backward {} ms, {} reps{vs}",
                    r.b,
                    r.t,
                    ms(r.forward.median),
                    ms(r.backward.median),
                    r.reps
                );
                if args.quiet { eprintln!("{msg}") } else { pb.println(msg) }
                results.push(r);
            }
            Err(e) => {
                pb.abandon();
                eprintln!("mpc bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    pb.finish_and_clear();
    let total_s = t_start.elapsed().as_secs_f64();

    let md = table(&results, &peer);
    println!("{md}");
    let gpu = cuda.then(gpu_info);
    let backend = if cuda { "cuda" } else { "cpu" };
    println!(
        "quadrotor hover, float64, K = {} fixed, backend {backend}{}{}, {} threads, gradient {:?}, line search {:?}; medians over timed reps after {} warm-up; others' load = cores kept busy by other processes during the timed reps; peer: {}",
        args.iters,
        gpu.as_ref().and_then(|g| g["name"].as_str()).map_or(String::new(), |n| format!(" ({n})")),
        if cuda { format!(", layout {:?}", args.layout) } else { String::new() },
        args.threads,
        args.gradient,
        args.line_search,
        args.warmup,
        peer.source
    );
    for r in &results {
        if let Some(c) = r.check {
            println!(
                "B={} T={}: GPU vs CPU solver: max|dx| {:.1e}, max|du| {:.1e}, cost rel {:.1e}, gradients rel {:.1e}",
                r.b, r.t, c[0], c[1], c[2], c[3]
            );
        }
    }

    if let Some(path) = &args.json {
        let rows: Vec<Value> = results
            .iter()
            .map(|r| {
                let p = peer.get(r.b, r.t);
                json!({
                    "B": r.b, "T": r.t, "lqr_iter": args.iters, "reps": r.reps,
                    "forward_ms": r.forward.to_json(),
                    "backward_ms": r.backward.to_json(),
                    "iterations_mean": r.iterations_mean,
                    "iterations_max": r.iterations_max,
                    "converged_before_cap": r.converged,
                    "cost_mean": r.cost_mean,
                    "grad_abs_max": r.grad_abs_max,
                    "cuda_layout": r.layout,
                    "kernel_forward_ms": r.kernel.map(|k| k.0.to_json()),
                    "kernel_backward_ms": r.kernel.map(|k| k.1.to_json()),
                    "check_vs_cpu": r.check.map(|c| json!({"x_max_abs": c[0], "u_max_abs": c[1], "cost_max_rel": c[2], "grad_max_rel": c[3]})),
                    "peer_forward_ms": p.map(|x| x.0),
                    "peer_backward_ms": p.map(|x| x.1),
                    "speedup_forward": p.map(|x| x.0 / r.forward.median),
                    "speedup_backward": p.map(|x| x.1 / r.backward.median),
                    "other_busy_cores_before": r.busy_before,
                    "other_busy_cores_during": r.busy_during,
                    "round_medians_ms": r.round_medians.iter().map(|m| json!({"forward": m.0, "backward": m.1})).collect::<Vec<_>>(),
                    "waited_for_idle_s": r.waited_s,
                    "loadavg_before": r.load_before,
                    "loadavg_after": r.load_after,
                })
            })
            .collect();
        let doc = json!({
            "benchmark": format!("mpc {} solver on the CA-AC-MPC quadrotor, hover-to-random-target, Table II style", backend.to_uppercase()),
            "settings": {
                "model": "mpc_models::Quadrotor (generated), scenarios::quadrotor_hover",
                "backend": backend,
                "backend_requested": format!("{:?}", args.backend).to_lowercase(),
                "cuda_layout": cuda.then(|| format!("{:?}", args.layout)),
                "dtype": "float64",
                "lqr_iter_fixed": args.iters,
                "eps": opts.eps,
                "line_search": opts.line_search,
                "line_search_rule": format!("{:?}", opts.line_search_rule),
                "gradient": format!("{:?}", opts.gradient),
                "u_bounds": [Quadrotor::CONTROL_LOWER, Quadrotor::CONTROL_UPPER],
                "u_init": "hover thrust",
                "threads": args.threads,
                "seed": args.seed,
                "warmup": args.warmup,
                "reps_requested": args.reps,
                "rounds": rounds,
                "budget_s": args.budget_s,
                "upstream_gradients": "grad_x, grad_u ~ N(0,1), fixed per case (loss sum(w_x*x)+sum(w_u*u))",
                "timing": if cuda {
                    "wall clock (std::time::Instant) per CudaSolver::solve and per CudaSolver::backward, end to end from host f64 arrays to host f64 arrays (conversion, copies, kernel); kernel_*_ms: host clock around the launch and its synchronisation; kernels compiled and buffers allocated before timing; one thread per problem, 64 per block; reps spread over rounds through the grid; median over all timed reps after warm-up"
                } else {
                    "wall clock (std::time::Instant) per forward solve_into and per backward_into; solver and buffers built before timing; reps spread over rounds through the grid; median over all timed reps after warm-up"
                },
            },
            "machine": machine_info(),
            "gpu": gpu,
            "date": started,
            "command": std::env::args().collect::<Vec<_>>(),
            "peer": {"source": peer.source, "rows": peer.rows.iter().map(|r| json!({"B": r.0, "T": r.1, "forward_ms": r.2, "backward_ms": r.3})).collect::<Vec<_>>()},
            "rows": rows,
            "total_wall_s": total_s,
        });
        let text = serde_json::to_string_pretty(&doc).expect("JSON of plain values") + "\n";
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("mpc bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("written {}", path.display());
    }
    ExitCode::SUCCESS
}
