//! The report of `mpc bench`: per-case lines, the Markdown table with peer ratios, the summary and the JSON file.

use super::args::BenchArgs;
use super::case::CaseResult;
use super::flops::FlopModel;
use super::machine::machine_info;
use super::memory::{Bandwidth, Traffic};
use super::peak::Peak;
use super::peer::Peer;
use mpc_models::Quadrotor;
use mpc_runtime::{GradientMode, LineSearchRule, Method, Model, SolverOptions};
use serde_json::{Value, json};
use std::path::Path;

/// What the report says about the run as a whole.
pub(super) struct RunInfo<'a> {
    pub(super) args: &'a BenchArgs,
    pub(super) opts: &'a SolverOptions,
    pub(super) peer: &'a Peer,
    pub(super) perf: &'a Perf,
    /// Whether the CUDA backend ran.
    pub(super) cuda: bool,
    /// Passes through the grid the timed repetitions were spread over.
    pub(super) rounds: usize,
    /// UTC date and time of the start.
    pub(super) started: String,
    /// Wall-clock seconds of the whole grid.
    pub(super) total_s: f64,
}

impl RunInfo<'_> {
    /// The backend that ran, as the report names it.
    fn backend(&self) -> &'static str {
        if self.cuda { "cuda" } else { "cpu" }
    }
}

/// Achieved rates: the machine's measured limits (arithmetic and memory) and the nominal
/// operation counts and bytes (CPU only).
pub(super) struct Perf {
    peak: Option<Peak>,
    memory: Option<Bandwidth>,
    threads: usize,
    /// Line-search trials per iteration (all steps with the `Best` rule; 1, a lower bound, with
    /// `FirstDecrease`).
    trials: f64,
    ddp: bool,
    exact: bool,
}

impl Perf {
    pub(super) fn new(args: &BenchArgs, opts: &SolverOptions, peak: Option<Peak>, memory: Option<Bandwidth>) -> Perf {
        let trials = match opts.line_search_rule {
            LineSearchRule::Best => opts.line_search.len() as f64,
            LineSearchRule::FirstDecrease => 1.0,
        };
        Perf {
            peak,
            memory,
            threads: args.threads,
            trials,
            ddp: opts.method == Method::Ddp,
            exact: opts.gradient == GradientMode::Exact,
        }
    }

    /// (forward GFLOP/s, backward GFLOP/s, forward and backward fractions of the limit) of a
    /// case; `None` on the GPU (no peak measured).
    fn rates(&self, r: &CaseResult) -> Option<(f64, f64, f64, f64)> {
        let peak = self.peak?;
        let m = FlopModel { nx: Quadrotor::NX, nu: Quadrotor::NU, horizon: r.t, ops: Quadrotor::OP_COUNTS };
        let fwd = m.forward(r.iterations_mean, self.trials, self.ddp) * r.b as f64 / (r.forward.median * 1e-3) / 1e9;
        let bwd = m.backward(self.exact) * r.b as f64 / (r.backward.median * 1e-3) / 1e9;
        // One problem runs on one thread; a batch on the whole pool.
        let limit = peak.limit(self.threads.min(r.b));
        Some((fwd, bwd, fwd / limit, bwd / limit))
    }

    /// (forward, backward) memory floor of a case, ms: the time its least memory traffic
    /// ([`Traffic`]) takes at the measured bandwidth; `None` on the GPU. A bound only where the
    /// case's data exceed the caches (they stay in them between repetitions otherwise).
    fn floors(&self, r: &CaseResult) -> Option<(f64, f64)> {
        let bw = self.memory?;
        let tr = Traffic::per_problem(Quadrotor::NX, Quadrotor::NU, r.t);
        let (b, th) = (r.b as f64, self.threads.min(r.b));
        Some((bw.floor_ms(b * tr.forward_read, b * tr.forward_write, th), bw.floor_ms(b * tr.backward_read, b * tr.backward_write, th)))
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
pub(super) fn table(results: &[CaseResult], peer: &Peer, perf: &Perf) -> String {
    let mut s = String::new();
    let cuda = results.iter().any(|r| r.kernel.is_some());
    let (pf_h, pfr_h, pb_h, pbr_h) = if peer.same_run {
        ("mpc.pytorch fwd ms (this run)", "fwd speed-up", "mpc.pytorch bwd ms (this run)", "bwd speed-up")
    } else {
        ("stored mpc.pytorch fwd ms", "fwd ratio to stored", "stored mpc.pytorch bwd ms", "bwd ratio to stored")
    };
    s.push_str(&format!(
        "| B | T | iters | forward median ms (p10–p90) | {pf_h} | {pfr_h} | backward median ms (p10–p90) | {pb_h} | {pbr_h} | reps | others' load |"
    ));
    let rated = perf.peak.is_some();
    s.push_str(if cuda { " kernel fwd / bwd ms |" } else { "" });
    s.push_str(if rated { " GFLOP/s fwd / bwd (of limit) |" } else { "" });
    let floored = perf.memory.is_some();
    s.push_str(if floored { " memory floor fwd / bwd ms (of time) |\n" } else { "\n" });
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    s.push_str(if cuda { "---:|" } else { "" });
    s.push_str(if rated { "---:|" } else { "" });
    s.push_str(if floored { "---:|\n" } else { "\n" });
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
        if let Some((f, b, ff, bf)) = perf.rates(r) {
            s.pop();
            s.push_str(&format!(" {f:.2} / {b:.2} ({:.0} % / {:.0} %) |\n", 100.0 * ff, 100.0 * bf));
        }
        if let Some((f, b)) = perf.floors(r) {
            s.pop();
            s.push_str(&format!(
                " {} / {} ({:.0} % / {:.0} %) |\n",
                ms(f),
                ms(b),
                100.0 * f / r.forward.median,
                100.0 * b / r.backward.median
            ));
        }
    }
    if let Some(p) = &perf.peak {
        s.push_str(&format!(
            "\nGFLOP/s: nominal dense-equivalent operations of the algorithm (src/cli/bench/flops.rs) per second, \
             against the {}; a batch of one problem runs on one core.\n",
            p.describe()
        ));
    }
    if let Some(m) = &perf.memory {
        s.push_str(&format!(
            "\nMemory floor: the least bytes a case moves (every input read once, every output written once: \
             src/cli/bench/memory.rs) at the {}; the time its memory traffic alone would take where the data do not fit \
             in the caches (small batches stay in them between repetitions, and their floor bounds nothing).\n",
            m.describe()
        ));
    }
    if peer.same_run {
        s.push_str(&format!(
            "\nmpc.pytorch columns: {}, just before this solver's repetitions: same-run speed-ups (medians).\n",
            peer.source
        ));
    } else {
        s.push_str(&format!(
            "\nmpc.pytorch columns: {}, recorded in another run, not measured in this one; the ratios to them are not \
             same-run speed-ups (`--peer-run PYTHON` measures the peer in this run).\n",
            peer.source
        ));
    }
    s
}

/// The line printed when a case is done: its medians and the ratios to mpc.pytorch.
pub(super) fn case_line(r: &CaseResult, peer: &Peer, perf: &Perf) -> String {
    let which = if peer.same_run { "mpc.pytorch in this run" } else { "stored mpc.pytorch" };
    let vs = peer.get(r.b, r.t).map_or(String::new(), |(f, bw)| {
        format!(" (vs {which} ×{:.0} / ×{:.0})", f / r.forward.median, bw / r.backward.median)
    });
    let rate = perf.rates(r).map_or(String::new(), |(f, b, ff, bf)| {
        format!(", {f:.2} / {b:.2} GFLOP/s ({:.0} % / {:.0} % of the limit)", 100.0 * ff, 100.0 * bf)
    });
    let floor = perf.floors(r).map_or(String::new(), |(f, b)| format!(", memory floor {} / {} ms", ms(f), ms(b)));
    format!(
        "B={} T={}: forward {} ms, backward {} ms, {} reps{rate}{floor}{vs}",
        r.b,
        r.t,
        ms(r.forward.median),
        ms(r.backward.median),
        r.reps
    )
}

/// Print the settings line under the table and, for CUDA, each case's check against the CPU.
pub(super) fn print_settings(info: &RunInfo, gpu: Option<&Value>, results: &[CaseResult]) {
    let (args, cuda) = (info.args, info.cuda);
    println!(
        "quadrotor hover, float64, K = {} fixed, backend {}{}{}, {} threads, gradient {:?}, line search {:?}, lanes {:?}; medians over timed reps after {} warm-up; others' load = cores kept busy by other processes during the timed reps; peer: {}",
        args.iters,
        info.backend(),
        gpu.and_then(|g| g["name"].as_str()).map_or(String::new(), |n| format!(" ({n})")),
        if cuda { format!(", layout {:?}", args.layout) } else { String::new() },
        args.threads,
        args.gradient,
        args.line_search,
        args.lanes,
        args.warmup,
        info.peer.source
    );
    for r in results {
        if let Some(c) = r.check {
            println!(
                "B={} T={}: GPU vs CPU solver: max|dx| {:.1e}, max|du| {:.1e}, cost rel {:.1e}, gradients rel {:.1e}",
                r.b, r.t, c[0], c[1], c[2], c[3]
            );
        }
    }
}

/// One case's row of the JSON report.
fn json_row(r: &CaseResult, peer: &Peer, perf: &Perf, iters: usize) -> Value {
    let p = peer.get(r.b, r.t);
    let rates = perf.rates(r);
    let floors = perf.floors(r);
    let tr = Traffic::per_problem(Quadrotor::NX, Quadrotor::NU, r.t);
    let b = r.b as f64;
    json!({
        "bytes_forward": {"read": b * tr.forward_read, "write": b * tr.forward_write},
        "bytes_backward": {"read": b * tr.backward_read, "write": b * tr.backward_write},
        "memory_floor_forward_ms": floors.map(|x| x.0),
        "memory_floor_backward_ms": floors.map(|x| x.1),
        "gflops_forward": rates.map(|x| x.0),
        "gflops_backward": rates.map(|x| x.1),
        "fraction_of_limit_forward": rates.map(|x| x.2),
        "fraction_of_limit_backward": rates.map(|x| x.3),
        "B": r.b, "T": r.t, "lqr_iter": iters, "reps": r.reps,
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
}

/// The `settings` object of the JSON report.
fn settings_json(info: &RunInfo) -> Value {
    let (args, opts, cuda) = (info.args, info.opts, info.cuda);
    json!({
        "model": "mpc_models::Quadrotor (generated), scenarios::quadrotor_hover",
        "backend": info.backend(),
        "backend_requested": format!("{:?}", args.backend).to_lowercase(),
        "cuda_layout": cuda.then(|| format!("{:?}", args.layout)),
        "dtype": "float64",
        "lqr_iter_fixed": args.iters,
        "eps": opts.eps,
        "line_search": opts.line_search,
        "line_search_rule": format!("{:?}", opts.line_search_rule),
        "gradient": format!("{:?}", opts.gradient),
        "lanes": format!("{:?}", opts.lanes),
        "u_bounds": [Quadrotor::CONTROL_LOWER, Quadrotor::CONTROL_UPPER],
        "u_init": "hover thrust",
        "threads": args.threads,
        "seed": args.seed,
        "warmup": args.warmup,
        "reps_requested": args.reps,
        "rounds": info.rounds,
        "budget_s": args.budget_s,
        "upstream_gradients": "grad_x, grad_u ~ N(0,1), fixed per case (loss sum(w_x*x)+sum(w_u*u))",
        "timing": if cuda {
            "wall clock (std::time::Instant) per CudaSolver::solve and per CudaSolver::backward, end to end from host f64 arrays to host f64 arrays (conversion, copies, kernel); kernel_*_ms: host clock around the launch and its synchronisation; kernels compiled and buffers allocated before timing; one thread per problem, 64 per block; reps spread over rounds through the grid; median over all timed reps after warm-up"
        } else {
            "wall clock (std::time::Instant) per forward solve_into and per backward_into; solver and buffers built before timing; reps spread over rounds through the grid; median over all timed reps after warm-up"
        },
    })
}

/// Write the JSON report to `path` and say so on stderr.
pub(super) fn write_json(
    path: &Path,
    info: &RunInfo,
    gpu: Option<&Value>,
    results: &[CaseResult],
) -> Result<(), String> {
    let peer = info.peer;
    let rows: Vec<Value> = results.iter().map(|r| json_row(r, peer, info.perf, info.args.iters)).collect();
    let peak = info.perf.peak.map(|p| {
        json!({"isa": p.isa, "lanes": p.lanes, "gflops_one_core": p.per_core, "gflops_all_threads": p.all_threads,
               "threads": p.threads, "method": "independent f64 FMA chains in registers, best of 7 (src/cli/bench/peak.rs)"})
    });
    let memory = info.perf.memory.map(|m| {
        json!({"read_gbs_one_core": m.read_one, "write_gbs_one_core": m.write_one, "read_gbs_all_threads": m.read_all,
               "write_gbs_all_threads": m.write_all, "write_stores": m.write_kind, "threads": m.threads,
               "write_gbs_ordinary": {"one_core": m.write_kinds[0].0, "all_threads": m.write_kinds[1].0},
               "write_gbs_non_temporal": {"one_core": m.write_kinds[0].1, "all_threads": m.write_kinds[1].1},
               "buffer_bytes_per_thread": m.buffer, "method": "each thread streams its own buffer (128 MiB, less beyond 8 threads): OR of every word (read), ordinary and non-temporal stores (write, the faster kept), best of 5 (src/cli/bench/memory.rs)"})
    });
    let doc = json!({
        "benchmark": format!("mpc {} solver on the CA-AC-MPC quadrotor, hover-to-random-target, Table II style", info.backend().to_uppercase()),
        "settings": settings_json(info),
        "machine": machine_info(),
        "machine_limit": peak,
        "memory_limit": memory,
        "memory_traffic": "least bytes per case: every input read once, every output written once (src/cli/bench/memory.rs, Traffic)",
        "flop_count": "nominal dense-equivalent operations per problem (src/cli/bench/flops.rs), model operations from Quadrotor::OP_COUNTS",
        "gpu": gpu,
        "date": info.started,
        "command": std::env::args().collect::<Vec<_>>(),
        "peer": {"source": peer.source, "same_run": peer.same_run, "report": peer.report, "rows": peer.rows.iter().map(|r| json!({"B": r.0, "T": r.1, "forward_ms": r.2, "backward_ms": r.3})).collect::<Vec<_>>()},
        "rows": rows,
        "total_wall_s": info.total_s,
    });
    let text = serde_json::to_string_pretty(&doc).expect("JSON of plain values") + "\n";
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("written {}", path.display());
    Ok(())
}
