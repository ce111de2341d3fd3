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
//! * the problem data are held as the Python package (and numpy) hold arrays of their size:
//!   from 4 MiB on in huge-page-advised memory (`mpc_runtime::pages`), as are the solver's
//!   outputs;
//! * the rayon pool has `--threads` threads (mpc.pytorch was measured with 2);
//! * the cores kept busy by other processes before (and, from `/proc/stat` less this
//!   process's own CPU time, during) each case are recorded: on a shared machine they explain
//!   outliers. `--wait-idle` waits for a quiet machine first.
//!
//! The ratio to mpc.pytorch: with `--peer-run PYTHON`, from the peer benchmark
//! (`shared/peer-bench/bench_mpc_pytorch.py`, or `--peer-script`) run in this invocation on the
//! same grid, K, threads and seed just before this solver's repetitions: the only same-run
//! speed-ups. Otherwise from a stored `results-mpc-pytorch-cpu.json` (`--peer`, or found next to
//! the repository in `shared/peer-bench/`), else the figures of that file embedded here, and
//! labelled as recorded in another run.
//!
//! On the CPU the run also measures this machine's float64 FMA limit (`peak.rs`: per core and
//! on the pool's threads) and reports each case's nominal dense-equivalent GFLOP/s (`flops.rs`,
//! with the model's generated operation counts) as a fraction of it; and its memory bandwidth
//! (`memory.rs`: streaming reads and writes, per core and on the pool's threads), with each
//! case's memory floor: the time the least bytes it must move would take at that bandwidth.
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
//!
//! [`Solver::solve_into`]: mpc_runtime::Solver::solve_into
//! [`Solver::backward_into`]: mpc_runtime::Solver::backward_into

mod args;
mod case;
mod flops;
mod machine;
mod memory;
mod peak;
mod peer;
mod report;
mod stats;
mod sysload;

pub use args::BenchArgs;

use args::{BackendArg, GradientArg, LanesArg, LineSearchArg};
use case::{Case, CaseResult};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mpc_cuda::select::{self, Needs, Preference};
use mpc_runtime::{BackendKind, GradientMode, Lanes, LineSearchRule, SolverOptions};
use peer::Peer;
use rayon::ThreadPool;
use report::RunInfo;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Run `mpc bench`.
pub fn run(args: BenchArgs) -> ExitCode {
    match try_run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// The steps of `mpc bench`; an error has been reported on stderr and carries the exit status.
fn try_run(mut args: BenchArgs) -> Result<(), ExitCode> {
    if let Err(e) = args::check_args(&args) {
        eprintln!("mpc bench: {e}");
        return Err(ExitCode::from(2));
    }
    let cuda = choose_backend(&args)?;
    if args.large {
        add_large_batches(&mut args, cuda);
    }
    let peer = match &args.peer_run {
        Some(python) => {
            let run = peer::PeerRun {
                python,
                script: args.peer_script.as_deref(),
                batches: &args.batch,
                horizons: &args.horizon,
                iters: args.iters,
                threads: args.threads,
                seed: args.seed,
                wait_idle: args.wait_idle,
            };
            peer::run_peer(&run).map_err(|e| {
                eprintln!("mpc bench: {e}");
                ExitCode::from(2)
            })?
        }
        None => peer::load_peer(args.peer.as_deref()).map_err(|e| {
            eprintln!("mpc bench: --peer: {e}");
            ExitCode::from(2)
        })?,
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.threads).build().map_err(|e| {
        eprintln!("mpc bench: cannot build a {}-thread pool: {e}", args.threads);
        ExitCode::FAILURE
    })?;
    let opts = solver_options(&args);
    // The machine's limit, measured before the cases (and after the peer, which loads the cores).
    let peak = (!cuda).then(|| peak::measure(&pool));
    if let Some(p) = &peak
        && !args.quiet
    {
        eprintln!("mpc bench: {}", p.describe());
    }
    // And its memory bandwidth (what the large batches' backward pass is near).
    let memory = (!cuda).then(|| memory::measure(&pool));
    if let Some(m) = &memory
        && !args.quiet
    {
        eprintln!("mpc bench: {}", m.describe());
    }
    let perf = report::Perf::new(&args, &opts, peak, memory);

    let cases: Vec<(usize, usize)> = args.batch.iter().flat_map(|&b| args.horizon.iter().map(move |&t| (b, t))).collect();
    let pb = progress_bar(cases.len() * args.reps, args.quiet);
    let started = machine::utc_now();
    let t_start = Instant::now();
    let mut states = Vec::with_capacity(cases.len());
    for &(b, t) in &cases {
        states.push(Case::new(&args, &opts, b, t, cuda).map_err(|e| fail(&pb, e))?);
    }
    let rounds = args.rounds.clamp(1, args.reps);
    time_rounds(&args, &pool, &mut states, rounds, cuda, &pb).map_err(|e| fail(&pb, e))?;
    let results = finish_cases(&states, &peer, &perf, args.quiet, &pb).map_err(|e| fail(&pb, e))?;
    pb.finish_and_clear();
    let total_s = t_start.elapsed().as_secs_f64();

    println!("{}", report::table(&results, &peer, &perf));
    let gpu = cuda.then(machine::gpu_info);
    let info = RunInfo { args: &args, opts: &opts, peer: &peer, perf: &perf, cuda, rounds, started, total_s };
    report::print_settings(&info, gpu.as_ref(), &results);
    if let Some(path) = &args.json {
        report::write_json(path, &info, gpu.as_ref(), &results).map_err(|e| {
            eprintln!("mpc bench: {e}");
            ExitCode::FAILURE
        })?;
    }
    Ok(())
}

/// Abandon the progress bar and report `e`; the exit status of a failed run.
fn fail(pb: &ProgressBar, e: String) -> ExitCode {
    pb.abandon();
    eprintln!("mpc bench: {e}");
    ExitCode::FAILURE
}

/// Whether the CUDA backend runs: the one rule of `mpc_cuda::select`, as `mpc solve`.
fn choose_backend(args: &BenchArgs) -> Result<bool, ExitCode> {
    let pref = match args.backend {
        BackendArg::Cpu => Preference::Cpu,
        BackendArg::Cuda => Preference::Cuda,
        BackendArg::Auto => Preference::Auto,
    };
    match select::choose(pref, 1, &Needs::default()) {
        Ok(c) => {
            if args.backend == BackendArg::Auto {
                eprintln!("mpc bench: --backend auto: using {} ({})", c.kind.name(), c.reason);
            }
            Ok(c.kind == BackendKind::Cuda)
        }
        Err(e) => {
            eprintln!("mpc bench: --backend cuda: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// `--large`: add B = 4096 and 65536 to the batch sizes (with a warning on the CPU).
fn add_large_batches(args: &mut BenchArgs, cuda: bool) {
    for b in [4096, 65536] {
        if !args.batch.contains(&b) {
            args.batch.push(b);
        }
    }
    if !cuda {
        eprintln!("mpc bench: --large on the CPU backend: B = 65536 takes minutes per repetition here");
    }
}

/// The solver options of the flags: K fixed iterations, the line search and the Hessian.
fn solver_options(args: &BenchArgs) -> SolverOptions {
    let (line_search, rule) = match args.line_search {
        LineSearchArg::Paper => (vec![1.0, 0.5, 0.25, 0.1], LineSearchRule::Best),
        LineSearchArg::Pytorch => ((0..5).map(|i| 0.2f64.powi(i)).collect(), LineSearchRule::FirstDecrease),
    };
    SolverOptions {
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
        lanes: match args.lanes {
            LanesArg::Auto => Lanes::Auto,
            LanesArg::Always => Lanes::Always,
            LanesArg::Never => Lanes::Never,
        },
        ..SolverOptions::default()
    }
}

/// The progress bar over all timed repetitions (hidden with `--quiet`).
fn progress_bar(len: usize, quiet: bool) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(
        Some(len as u64),
        if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() },
    );
    pb.set_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} reps, {elapsed_precise} (eta {eta})")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// The timed repetitions of every case, spread over `rounds` passes through the grid; a case
/// that has spent its budget is skipped. Round 0 also records the load before each case, runs
/// the warm-up and, on the GPU, checks the solution against the CPU solver's.
fn time_rounds(
    args: &BenchArgs,
    pool: &ThreadPool,
    states: &mut [Case],
    rounds: usize,
    cuda: bool,
    pb: &ProgressBar,
) -> Result<(), String> {
    let budget = Duration::from_secs_f64(args.budget_s.max(0.0));
    for round in 0..rounds {
        let n = args.reps * (round + 1) / rounds - args.reps * round / rounds;
        for c in states.iter_mut() {
            pb.set_prefix(format!("B={} T={} ({}/{rounds})", c.b, c.t, round + 1));
            if c.fwd.len() >= 5 && c.fwd.iter().chain(&c.bwd).sum::<Duration>() > budget {
                continue;
            }
            record_load_before(c, args, round);
            pool.install(|| {
                if round == 0 {
                    // Warm-up (also sizes every buffer: the timed reps allocate nothing).
                    c.reps(args.warmup.max(1), false, budget, pb)?;
                    if cuda {
                        c.check_against_cpu();
                    }
                }
                c.reps(n, true, budget, pb)
            })?;
            c.load_after = sysload::loadavg();
        }
    }
    Ok(())
}

/// Before a case's repetitions: wait for an idle machine (`--wait-idle`, every round) or, in
/// round 0, sample the cores other processes keep busy; round 0 also records the load average.
fn record_load_before(c: &mut Case, args: &BenchArgs, round: usize) {
    if args.wait_idle > 0.0 {
        let (busy, waited) = sysload::wait_idle(args.wait_idle, args.idle_cores);
        if round == 0 {
            c.busy_before = busy;
        }
        c.waited_s += waited;
    } else if round == 0 {
        c.busy_before = sysload::busy_cores(Duration::from_millis(300));
    }
    if round == 0 {
        c.load_before = sysload::loadavg();
    }
}

/// The statistics of every case, each announced with its medians as it is done.
fn finish_cases(
    states: &[Case],
    peer: &Peer,
    perf: &report::Perf,
    quiet: bool,
    pb: &ProgressBar,
) -> Result<Vec<CaseResult>, String> {
    let mut results = Vec::new();
    for c in states {
        let r = c.finish()?;
        let msg = report::case_line(&r, peer, perf);
        if quiet { eprintln!("{msg}") } else { pb.println(msg) }
        results.push(r);
    }
    Ok(results)
}
