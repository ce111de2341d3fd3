//! The forward solve's optional iteration trace (`mpc solve --verbose`).

/// One line-search outcome of the forward solve ([`Solver::solve_traced`](crate::solver::Solver::solve_traced), `mpc solve
/// --verbose`): what crocoddyl's verbose callback prints, for this solver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IterationRecord {
    /// The iteration (1-based; an iteration that raises the regularisation and retries has
    /// several records).
    pub iteration: usize,
    /// The cost after the step (of the current iterate when no step was taken).
    pub cost: f64,
    /// `‖Δu‖` of the step taken, or of the full step tried when none was.
    pub step: f64,
    /// The line-search step size taken; NaN when no step was taken or the step was chosen on
    /// the KKT residual.
    pub alpha: f64,
    /// The regularisation μ the Riccati pass used.
    pub mu: f64,
    /// The KKT residual after the step, where it was computed (with `solver.tol`); else NaN.
    pub kkt: f64,
    /// Whether a step was taken.
    pub accepted: bool,
    /// Whether the Riccati pass used DDP's second-order term.
    pub newton: bool,
}

/// `v` as C's `%.*e` (`1.250e-03`, which lines up in columns, rather than Rust's `1.25e-3`);
/// `-` for NaN (a value not computed).
pub(crate) fn sci(v: f64, prec: usize) -> String {
    if v.is_nan() {
        return "-".to_string();
    }
    let s = format!("{v:.prec$e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// The iteration trace of one problem as a table, one line per [`IterationRecord`] (what
/// `mpc solve --verbose` prints): iteration, cost, ‖Δu‖, step size α, regularisation μ, KKT
/// residual (where computed), and whether the step was taken (`step`), taken on DDP's Newton
/// pass (`newton`), or refused (`reject`: no step size lowered the cost; μ rises).
pub fn format_trace(records: &[IterationRecord]) -> String {
    let num = sci;
    let mut out = format!("{:>5} {:>13} {:>10} {:>9} {:>9} {:>10}  {}\n", "iter", "cost", "|du|", "alpha", "mu", "kkt", "outcome");
    for r in records {
        let outcome = match (r.accepted, r.newton) {
            (true, false) => "step",
            (true, true) => "newton",
            (false, _) => "reject",
        };
        out.push_str(&format!(
            "{:>5} {:>13} {:>10} {:>9} {:>9} {:>10}  {outcome}\n",
            r.iteration,
            num(r.cost, 6),
            num(r.step, 3),
            num(r.alpha, 2),
            num(r.mu, 2),
            num(r.kkt, 3),
        ));
    }
    out
}
