//! Control-limited iLQR for one problem (Tassa, Mansard & Todorov 2014): the iteration with its
//! line search and regularisation; the rollouts, the Riccati pass and the KKT residual are in
//! `rollout.rs`, `riccati.rs` and `kkt.rs`.

use super::IterationRecord;
use super::arith::Arith;
use super::isa::isa_builds;
use super::workspace::Workspace;
use super::{LineSearchRule, Method, NonFinite, ProblemRef, SolverOptions, Stats, StopReason};
use crate::model::Dynamics;
use super::kkt::{du_norm, kkt_residual, kkt_step};
use super::riccati::{RiccatiOutcome, riccati};
use super::status::finite as all_finite;
use super::rollout::{linearize_all, load_bounds, load_cost_structure, rollout_plain, rollout_trial};
use super::lanes::{LANES, lane_du_norm, rollout_trials, take_lane, trials_apply};

isa_builds! {
    /// Solve one problem; the solution goes to `x_out` (T×nx) and `u_out` (T×nu). With `trace`,
    /// one [`IterationRecord`] per line-search outcome is appended to it (the results are the same
    /// to the bit with or without). Runs the widest build of
    /// [`Isa::detect`](super::isa::Isa::detect).
    pub(crate) fn solve_one;
    /// [`solve_one`] in the build `isa` (which this CPU must support).
    pub(crate) fn solve_one_with = solve_one_impl(
        d: &D,
        opts: &SolverOptions,
        ws: &mut Workspace,
        p: &ProblemRef<'_>,
        x_out: &mut [f64],
        u_out: &mut [f64],
        trace: Option<&mut Vec<IterationRecord>>,
    ) -> Stats
}

#[inline(always)]
fn solve_one_impl<D: Dynamics, M: Arith>(
    d: &D,
    opts: &SolverOptions,
    ws: &mut Workspace,
    p: &ProblemRef<'_>,
    x_out: &mut [f64],
    u_out: &mut [f64],
    trace: Option<&mut Vec<IterationRecord>>,
) -> Stats {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    let mut trace = trace;
    load_bounds(ws, p);
    load_cost_structure(ws, p, n);
    match p.u_init {
        Some(u0) => ws.traj.u.copy_from_slice(&u0[..tt * nu]),
        None => ws.traj.u.fill(0.0),
    }
    for i in 0..tt * nu {
        ws.traj.u[i] = ws.traj.u[i].max(ws.data.lo[i]).min(ws.data.hi[i]);
    }
    let (mut cost, mut scale) = rollout_plain(d, ws, p);
    if !(all_finite(&ws.traj.x[..tt * nx]) && cost.is_finite()) {
        // Nothing to iterate from: the initial rollout itself overflowed (or the model is
        // undefined along it). Reported as it is, never as converged.
        let what = if all_finite(&ws.traj.x[..tt * nx]) { NonFinite::Cost } else { NonFinite::Rollout };
        x_out.copy_from_slice(&ws.traj.x);
        u_out.copy_from_slice(&ws.traj.u);
        return Stats { cost, iterations: 0, converged: false, kkt_residual: f64::NAN, stop: StopReason::NonFinite(what) };
    }
    ws.ric.k.fill(0.0);
    ws.traj.xbest.copy_from_slice(&ws.traj.x);
    ws.traj.ubest.copy_from_slice(&ws.traj.u);
    let mut best_cost = cost;
    // Whether ws.traj.xbest/ubest hold the current iterate.
    let mut best_is_current = true;
    // DDP's second-order term in the Riccati pass: with `method: ddp`, or once iLQR has stalled
    // below the cost's resolution with a KKT tolerance to meet (a Gauss-Newton model whose
    // steps neither lower the cost nor the residual; Newton steps then finish the solve).
    let mut ddp = opts.method == Method::Ddp && d.has_curvature();
    let mut mu = 0.0f64;
    let mut iters = 0;
    let mut stop = StopReason::MaxIterations;
    // The KKT residual, and whether it and the Jacobians in ws.lin.a/ws.lin.b belong to the current
    // iterate (a step accepted on its residual comes with both).
    let mut kkt = f64::NAN;
    let mut kkt_current = false;
    let mut lin_current = false;
    // With a KKT tolerance, a step must lower the cost by more than rounding to be accepted on
    // the cost; steps the cost cannot tell from rounding are judged by the KKT residual. The
    // residual is then needed every iteration; otherwise only at the end.
    let kkt_mode = opts.tol.is_some();
    // Whether a step of norm `du` (taken at regularisation `mu`, now at controls `u`) means
    // convergence. Without a KKT tolerance: below `eps`. With one, the solver stops on
    // optimality: only a step that vanishes in floating point counts (a step below `eps` may
    // just be a badly scaled Newton step, and a regularised one is small whether or not the
    // iterate is optimal).
    let vanished = |du: f64, mu: f64, u: &[f64]| {
        if kkt_mode { mu == 0.0 && du <= 4.0 * f64::EPSILON * (1.0 + u.iter().map(|v| v * v).sum::<f64>().sqrt()) } else { du < opts.eps }
    };
    'outer: loop {
        // Every iteration starts at a new iterate: its Jacobians serve the Riccati pass and the
        // optimality test alike.
        if kkt_mode {
            if !lin_current {
                linearize_all(d, ws);
                lin_current = true;
            }
            if !kkt_current {
                kkt = kkt_residual(d, ws, p, true);
                kkt_current = true;
            }
            if opts.tol.is_some_and(|tol| kkt <= tol) {
                stop = StopReason::Tolerance;
                break;
            }
        }
        if iters >= opts.max_iters {
            break;
        }
        // Without a KKT tolerance the Jacobians are taken in the Riccati pass, stage by stage
        // as it needs them (`riccati`'s `linearize`): there they fill its chain's latency.
        iters += 1;
        // Cost changes below this are rounding noise.
        let tol = 64.0 * f64::EPSILON * (n as f64) * scale.max(cost.abs());
        let accept_limit = if kkt_mode { cost - tol } else { cost + tol };
        loop {
            let outcome = riccati::<D, M>(d, ws, p, mu, ddp, !lin_current);
            lin_current = true;
            if outcome == RiccatiOutcome::NonFinite {
                stop = StopReason::NonFinite(NonFinite::Riccati);
                break 'outer;
            }
            if outcome == RiccatiOutcome::NotPositiveDefinite {
                if !escalate(&mut mu, &mut ddp, kkt_mode && d.has_curvature(), opts) {
                    stop = StopReason::Stalled;
                    break 'outer;
                }
                continue;
            }
            let (chosen, first_du) = line_search(d, ws, p, opts, accept_limit, tol);
            // The step taken, if any: (cost, scale, ‖Δu‖, step size; NaN for a step chosen on the
            // KKT residual).
            let step = match chosen {
                Some((jb, sb, alpha)) => {
                    let du = du_norm(&ws.traj.ub, &ws.traj.u);
                    std::mem::swap(&mut ws.traj.x, &mut ws.traj.xb);
                    std::mem::swap(&mut ws.traj.u, &mut ws.traj.ub);
                    kkt_current = false;
                    lin_current = false;
                    Some((jb, sb, du, alpha))
                }
                None => {
                    if vanished(first_du, mu, &ws.traj.u) {
                        // The step is below the tolerance and no longer measurable in the cost.
                        stop = StopReason::SmallStep;
                        break 'outer;
                    }
                    match if kkt_mode { kkt_step(d, ws, p, opts, cost + tol, kkt) } else { None } {
                        Some((jt, st, r, du)) => {
                            // ws.traj.x/ws.traj.u hold the step, ws.lin.a/ws.lin.b its Jacobians, `r` its residual.
                            kkt = r;
                            kkt_current = true;
                            lin_current = true;
                            Some((jt, st, du, f64::NAN))
                        }
                        None => {
                            if kkt_mode {
                                // kkt_step linearised the trials: the Jacobians of the iterate back.
                                linearize_all(d, ws);
                            }
                            None
                        }
                    }
                }
            };
            if let Some(tr) = trace.as_deref_mut() {
                tr.push(IterationRecord {
                    iteration: iters,
                    cost: step.map_or(cost, |(jt, ..)| jt),
                    step: step.map_or(first_du, |(_, _, du, _)| du),
                    alpha: step.map_or(f64::NAN, |(.., a)| a),
                    mu,
                    kkt: if kkt_mode && kkt_current { kkt } else { f64::NAN },
                    accepted: step.is_some(),
                    newton: ddp,
                });
            }
            match step {
                Some((jt, st, du, _)) => {
                    cost = jt;
                    scale = st;
                    if cost < best_cost {
                        best_cost = cost;
                        ws.traj.xbest.copy_from_slice(&ws.traj.x);
                        ws.traj.ubest.copy_from_slice(&ws.traj.u);
                        best_is_current = true;
                    } else {
                        best_is_current = false;
                    }
                    let done = vanished(du, mu, &ws.traj.u);
                    mu = opts.lower_regularisation(mu);
                    if done {
                        stop = StopReason::SmallStep;
                        break 'outer;
                    }
                    break;
                }
                None => {
                    if !escalate(&mut mu, &mut ddp, kkt_mode && d.has_curvature(), opts) {
                        stop = StopReason::Stalled;
                        break 'outer;
                    }
                }
            }
        }
    }
    let converged = stop.converged();
    if !converged && !best_is_current {
        ws.traj.x.copy_from_slice(&ws.traj.xbest);
        ws.traj.u.copy_from_slice(&ws.traj.ubest);
        cost = best_cost;
        kkt_current = false;
        lin_current = false;
    }
    if !kkt_current && opts.report_kkt {
        kkt = kkt_residual(d, ws, p, lin_current);
    }
    if (opts.report_kkt || kkt_mode) && !kkt.is_finite() && !stop.non_finite() {
        // The cost's gradient through the dynamics is not finite at the returned iterate.
        stop = StopReason::NonFinite(NonFinite::Residual);
    }
    let converged = stop.converged();
    x_out.copy_from_slice(&ws.traj.x);
    u_out.copy_from_slice(&ws.traj.u);
    Stats { cost, iterations: iters, converged, kkt_residual: kkt, stop }
}

/// The line search: a trial rollout per step size of `opts.line_search` (all of them, or up
/// to the first decrease with [`LineSearchRule::FirstDecrease`]), keeping the best that lowers
/// the cost to at most `accept_limit`, and preferring the earlier (larger) step when two are
/// equal within the rounding tolerance `tol`. Returns the chosen trial's `(cost, scale, α)`,
/// its states and controls left in `ws.traj.xb`/`ub`, and `‖Δu‖` of the first (full) step.
#[inline(always)]
fn line_search<D: Dynamics>(
    d: &D,
    ws: &mut Workspace,
    p: &ProblemRef<'_>,
    opts: &SolverOptions,
    accept_limit: f64,
    tol: f64,
) -> (Option<(f64, f64, f64)>, f64) {
    let mut chosen: Option<(f64, f64, f64)> = None;
    let mut first_du = f64::NAN;
    if trials_apply(d, opts) {
        // The same search with up to LANES step sizes rolled out at once (each lane that
        // size's scalar trial to the bit); a short last chunk repeats its last step size.
        for (ci, chunk) in opts.line_search.chunks(LANES).enumerate() {
            let mut alphas = [chunk[chunk.len() - 1]; LANES];
            alphas[..chunk.len()].copy_from_slice(chunk);
            let (jt, st) = rollout_trials(d, ws, p, &alphas);
            for (l, &alpha) in chunk.iter().enumerate() {
                if ci == 0 && l == 0 {
                    first_du = lane_du_norm(&ws.trials, 0, &ws.traj.u);
                }
                if !jt[l].is_finite() || jt[l] > accept_limit {
                    continue;
                }
                if chosen.is_none_or(|(jb, _, _)| jt[l] < jb - tol) {
                    chosen = Some((jt[l], st[l], alpha));
                    take_lane(&ws.trials, l, &mut ws.traj.xb, &mut ws.traj.ub);
                }
            }
        }
        return (chosen, first_du);
    }
    for (li, &alpha) in opts.line_search.iter().enumerate() {
        let (jt, st) = rollout_trial(d, ws, p, alpha);
        if li == 0 {
            first_du = du_norm(&ws.traj.ut, &ws.traj.u);
        }
        if !jt.is_finite() || jt > accept_limit {
            continue;
        }
        let better = match chosen {
            None => true,
            Some((jb, _, _)) => jt < jb - tol,
        };
        if better {
            chosen = Some((jt, st, alpha));
            std::mem::swap(&mut ws.traj.xt, &mut ws.traj.xb);
            std::mem::swap(&mut ws.traj.ut, &mut ws.traj.ub);
            if opts.line_search_rule == LineSearchRule::FirstDecrease {
                break;
            }
        }
    }
    (chosen, first_du)
}

/// After a Riccati pass that was not positive definite or a line search that found no step:
/// raise μ ([`SolverOptions::raise_regularisation`]). Past `reg_max`, switch once to DDP's
/// second-order pass at μ = 0 where `ddp_fallback` allows (a KKT tolerance and a model with
/// curvature); `false` when neither is left (the solve has stalled).
pub(crate) fn escalate(mu: &mut f64, ddp: &mut bool, ddp_fallback: bool, opts: &SolverOptions) -> bool {
    *mu = opts.raise_regularisation(*mu);
    if *mu <= opts.reg_max {
        return true;
    }
    if ddp_fallback && !*ddp {
        *ddp = true;
        *mu = 0.0;
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::isa::Isa;
    use crate::solver::Bound;
    use crate::solver::test_models::{Ring, RingLanes};
    use crate::solver::Lanes;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A random [`Ring`] of `nx` states and `nu` controls with its start and stage costs over
    /// `t` stages (diagonal Hessians, plus a symmetric coupling on the stages where `dense(s)`).
    #[allow(clippy::type_complexity)]
    fn ring_problem(rng: &mut StdRng, t: usize, nx: usize, nu: usize, dense: impl Fn(usize) -> bool) -> (Ring, Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = nx + nu;
        let ring = Ring::random(rng, nx, nu);
        let x0: Vec<f64> = (0..nx).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut cm = vec![0.0; t * n * n];
        for s in 0..t {
            for i in 0..n {
                cm[s * n * n + i * n + i] = rng.random_range(0.5..2.0);
                if dense(s) && i + 1 < n {
                    let v = rng.random_range(-0.2..0.2);
                    cm[s * n * n + i * n + i + 1] = v;
                    cm[s * n * n + (i + 1) * n + i] = v;
                }
            }
        }
        let cv: Vec<f64> = (0..t * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        (ring, x0, cm, cv)
    }

    /// Every build of the solver loop (AVX2, AVX-512, as this CPU allows) gives the solution of
    /// the solver with fused multiply-adds compiled for the baseline (`f64::mul_add` there: the
    /// same rounding, in software) to the bit, and the baseline build (separate multiply-adds)
    /// one within rounding of it; for the three accumulator paths of `add_cost_to_go`
    /// (`nx + nu` ≤ 16, ≤ 32, > 32), dense and diagonal costs, active bounds.
    #[test]
    fn every_instruction_set_build_gives_the_same_bits() {
        let mut rng = StdRng::seed_from_u64(11);
        let t = 8;
        for &(nx, nu) in &[(4, 2), (13, 3), (26, 4), (30, 6)] {
            // Odd stages dense (not diagonal).
            let (ring, x0, cm, cv) = ring_problem(&mut rng, t, nx, nu, |s| s % 2 == 1);
            let (lo, hi) = (vec![-0.3; nu], vec![0.4; nu]);
            let p = ProblemRef { x_init: &x0, cm: &cm, cv: &cv, lower: Bound::PerControl(&lo), upper: Bound::PerControl(&hi), u_init: None };
            // Five iterations: every one still lowers the cost by more than rounding in both
            // roundings (at the sixth, (30, 6)'s cost moves by an ulp, and which iterate is
            // returned as the best one may then differ between them by a whole step).
            let opts = SolverOptions { max_iters: 5, ..SolverOptions::default() };
            let mut out: Vec<(Isa, Vec<f64>, Vec<f64>, f64)> = Vec::new();
            let (mut xf, mut uf) = (vec![0.0; t * nx], vec![0.0; t * nu]);
            let mut ws = Workspace::new(t, nx, nu);
            let fused = solve_one_impl::<Ring, crate::solver::arith::Fused>(&ring, &opts, &mut ws, &p, &mut xf, &mut uf, None);
            for isa in Isa::available() {
                let mut ws = Workspace::new(t, nx, nu);
                let (mut x, mut u) = (vec![0.0; t * nx], vec![0.0; t * nu]);
                let st = solve_one_with(isa, &ring, &opts, &mut ws, &p, &mut x, &mut u, None);
                assert!(st.cost.is_finite() && st.iterations > 0, "{isa:?} nx={nx}: {st:?}");
                assert!(u.iter().any(|&v| v == -0.3 || v == 0.4), "nx={nx}: no bound active");
                out.push((isa, x, u, st.cost));
            }
            let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            for (isa, x, u, c) in &out {
                if *isa == Isa::Base {
                    // Separate roundings: the same solution within rounding.
                    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(p, q)| (p - q).abs() <= 1e-12 * (1.0 + q.abs()));
                    let md = x.iter().zip(&xf).chain(u.iter().zip(&uf)).map(|(p, q)| (p - q).abs() / (1.0 + q.abs())).fold(0.0, f64::max);
                    assert!(close(x, &xf) && close(u, &uf), "baseline build far from the fused solve (nx={nx}, nu={nu}): {md:e}");
                    assert!((c - fused.cost).abs() <= 1e-12 * (1.0 + fused.cost.abs()));
                    continue;
                }
                assert_eq!(bits(x), bits(&xf), "{isa:?} states differ (nx={nx}, nu={nu})");
                assert_eq!(bits(u), bits(&uf), "{isa:?} controls differ (nx={nx}, nu={nu})");
                assert_eq!(c.to_bits(), fused.cost.to_bits());
            }
        }
    }

    /// The line search with its step sizes in lanes (`lanes::trials`) gives the solution of
    /// the scalar line search to the bit: 2, 4 and 6 step sizes (one short chunk, one full,
    /// a full and a short one), dense and diagonal stage costs, active bounds, and a step size
    /// whose rollout overflows (its lane must be passed over as the scalar trial is).
    #[test]
    fn step_sizes_in_lanes_give_the_scalar_line_search_bits() {
        let mut rng = StdRng::seed_from_u64(5);
        let t = 9;
        // (5, 18): the controls' accumulator on the heap (nu > 16); (26, 7): n > 32.
        for &(nx, nu) in &[(4, 2), (13, 3), (5, 18), (26, 7)] {
            let (ring, x0, cm, cv) = ring_problem(&mut rng, t, nx, nu, |s| s % 3 == 1);
            let ring = RingLanes(ring);
            let (lo, hi) = (vec![-0.3; nu], vec![0.4; nu]);
            let p = ProblemRef { x_init: &x0, cm: &cm, cv: &cv, lower: Bound::PerControl(&lo), upper: Bound::PerControl(&hi), u_init: None };
            for ls in [vec![1.0, 0.3], vec![1.0, 0.5, 0.25, 0.1], vec![1e300, 1.0, 0.7, 0.5, 0.25, 0.1]] {
                let base = SolverOptions { max_iters: 6, line_search: ls.clone(), ..SolverOptions::default() };
                let scalar = SolverOptions { lanes: Lanes::Never, ..base.clone() };
                assert!(trials_apply(&ring, &base) && !trials_apply(&ring, &scalar));
                let mut out = Vec::new();
                for opts in [&scalar, &base] {
                    let mut ws = Workspace::new(t, nx, nu);
                    let (mut x, mut u) = (vec![0.0; t * nx], vec![0.0; t * nu]);
                    let mut trace = Vec::new();
                    let st = solve_one(&ring, opts, &mut ws, &p, &mut x, &mut u, Some(&mut trace));
                    assert!(st.cost.is_finite() && st.iterations > 1, "nx={nx} {ls:?}: {st:?}");
                    assert!(u.iter().any(|&v| v == -0.3 || v == 0.4), "nx={nx}: no bound active");
                    let alphas: Vec<u64> = trace.iter().map(|r| r.alpha.to_bits()).collect();
                    out.push((x, u, st.cost, st.iterations, alphas));
                }
                let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&out[0].0), bits(&out[1].0), "states differ (nx={nx}, {ls:?})");
                assert_eq!(bits(&out[0].1), bits(&out[1].1), "controls differ (nx={nx}, {ls:?})");
                assert_eq!((out[0].2.to_bits(), out[0].3), (out[1].2.to_bits(), out[1].3));
                assert_eq!(out[0].4, out[1].4, "step sizes taken differ (nx={nx}, {ls:?})");
            }
        }
    }
}
