//! Arguments of `mpc bench`: the clap definitions, their value enums and the checks of their values.

use mpc_cuda::render::KernelLayout;
use std::path::PathBuf;

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
    /// CPU batches: `auto` (the solver's default rule: lock-step groups of 4 problems where
    /// measured to pay), `always` (groups whenever B ≥ 4), `never` (problem by problem). Every
    /// choice gives the same bits; this is for measuring them side by side.
    #[arg(long, value_enum, default_value_t = LanesArg::Auto)]
    pub lanes: LanesArg,
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
    /// Run the mpc.pytorch benchmark (`bench_mpc_pytorch.py`) with this Python interpreter in
    /// this invocation, on the same grid, iterations, threads and seed, before timing this
    /// solver, and take the ratios from that run only (a virtual environment made as
    /// `shared/peer-bench/README.md` says, e.g. `--peer-run "$PEER_VENV/bin/python"`).
    #[arg(long, value_name = "PYTHON", conflicts_with = "peer")]
    pub peer_run: Option<PathBuf>,
    /// The peer benchmark script for `--peer-run`; searched as
    /// `shared/peer-bench/bench_mpc_pytorch.py` next to the repository when absent.
    #[arg(long, value_name = "SCRIPT.py", requires = "peer_run")]
    pub peer_script: Option<PathBuf>,
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
    pub(super) fn forced(self) -> Option<KernelLayout> {
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

/// `--lanes` values (see [`mpc_runtime::Lanes`]).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LanesArg {
    /// Where measured to pay.
    Auto,
    /// Whenever the batch holds a whole group.
    Always,
    /// Problem by problem.
    Never,
}

/// Reject values no run can use (empty or zero sizes, zero iterations, repetitions or threads).
pub(super) fn check_args(args: &BenchArgs) -> Result<(), String> {
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
