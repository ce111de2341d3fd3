//! The report of `mpc bench`: per-case lines, the Markdown table with peer ratios, the summary and the JSON file.

use super::args::BenchArgs;
use super::case::CaseResult;
use super::machine::machine_info;
use super::peer::Peer;
use mpc_models::Quadrotor;
use mpc_runtime::{Model, SolverOptions};
use serde_json::{Value, json};
use std::path::Path;

/// What the report says about the run as a whole.
pub(super) struct RunInfo<'a> {
    pub(super) args: &'a BenchArgs,
    pub(super) opts: &'a SolverOptions,
    pub(super) peer: &'a Peer,
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
pub(super) fn table(results: &[CaseResult], peer: &Peer) -> String {
    let mut s = String::new();
    let cuda = results.iter().any(|r| r.kernel.is_some());
    s.push_str("| B | T | iters | forward median ms (p10–p90) | stored mpc.pytorch fwd ms | fwd ratio to stored | backward median ms (p10–p90) | stored mpc.pytorch bwd ms | bwd ratio to stored | reps | others' load |");
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
    s.push_str(&format!(
        "\nmpc.pytorch columns: {}, recorded in another run, not measured in this one; the ratios to them are not same-run \
         speed-ups (run shared/peer-bench/bench_mpc_pytorch.py back to back with this for those).\n",
        peer.source
    ));
    s
}

/// The line printed when a case is done: its medians and the ratios to mpc.pytorch.
pub(super) fn case_line(r: &CaseResult, peer: &Peer) -> String {
    let vs = peer.get(r.b, r.t).map_or(String::new(), |(f, bw)| {
        format!(" (vs stored mpc.pytorch ×{:.0} / ×{:.0})", f / r.forward.median, bw / r.backward.median)
    });
    format!(
        "B={} T={}: forward {} ms, backward {} ms, {} reps{vs}",
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
        "quadrotor hover, float64, K = {} fixed, backend {}{}{}, {} threads, gradient {:?}, line search {:?}; medians over timed reps after {} warm-up; others' load = cores kept busy by other processes during the timed reps; peer: {}",
        args.iters,
        info.backend(),
        gpu.and_then(|g| g["name"].as_str()).map_or(String::new(), |n| format!(" ({n})")),
        if cuda { format!(", layout {:?}", args.layout) } else { String::new() },
        args.threads,
        args.gradient,
        args.line_search,
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
fn json_row(r: &CaseResult, peer: &Peer, iters: usize) -> Value {
    let p = peer.get(r.b, r.t);
    json!({
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
    let rows: Vec<Value> = results.iter().map(|r| json_row(r, peer, info.args.iters)).collect();
    let doc = json!({
        "benchmark": format!("mpc {} solver on the CA-AC-MPC quadrotor, hover-to-random-target, Table II style", info.backend().to_uppercase()),
        "settings": settings_json(info),
        "machine": machine_info(),
        "gpu": gpu,
        "date": info.started,
        "command": std::env::args().collect::<Vec<_>>(),
        "peer": {"source": peer.source, "rows": peer.rows.iter().map(|r| json!({"B": r.0, "T": r.1, "forward_ms": r.2, "backward_ms": r.3})).collect::<Vec<_>>()},
        "rows": rows,
        "total_wall_s": info.total_s,
    });
    let text = serde_json::to_string_pretty(&doc).expect("JSON of plain values") + "\n";
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("written {}", path.display());
    Ok(())
}
