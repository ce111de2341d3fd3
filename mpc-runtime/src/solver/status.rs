//! Why a problem stopped ([`StopReason`], with the status codes the kernels share) and what
//! the backward pass did ([`GradStatus`], and the one masking rule of every backend).

use super::Solution;

/// Why the forward solve of one problem stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StopReason {
    /// The KKT residual fell below `tol` (converged).
    Tolerance,
    /// The norm of the whole control update fell below `eps` (converged).
    SmallStep,
    /// `max_iters` iterations ran without meeting a convergence test.
    #[default]
    MaxIterations,
    /// No step size lowered the cost even with the largest regularisation: the iterates
    /// cannot move (the residual says how far from optimal they stopped).
    Stalled,
    /// Something went non-finite (overflow, or a model that is undefined at the iterate): never
    /// converged. The solution is the last finite iterate where there is one.
    NonFinite(NonFinite),
}

/// What went non-finite in a forward solve ([`StopReason::NonFinite`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFinite {
    /// The states of the rollout from `x_init` with the initial controls (the dynamics
    /// overflowed, or `x_init` is too large to propagate).
    Rollout,
    /// The cost of the initial rollout (its states finite).
    Cost,
    /// The Riccati pass: the dynamics' Jacobians, the cost-to-go or the gains at the iterate.
    Riccati,
    /// The KKT residual of the returned solution (the cost's gradient through the dynamics).
    Residual,
}

/// Every [`StopReason`] with its status code, the one table the CUDA kernels' `status_out`
/// codes are rendered from.
pub const STOP_CODES: [(StopReason, i32); 8] = [
    (StopReason::MaxIterations, 0),
    (StopReason::Tolerance, 1),
    (StopReason::SmallStep, 2),
    (StopReason::Stalled, 3),
    (StopReason::NonFinite(NonFinite::Rollout), 4),
    (StopReason::NonFinite(NonFinite::Cost), 5),
    (StopReason::NonFinite(NonFinite::Riccati), 6),
    (StopReason::NonFinite(NonFinite::Residual), 7),
];

impl StopReason {
    /// A short name for reports (`"tolerance"`, `"small-step"`, `"max-iterations"`, `"stalled"`).
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Tolerance => "tolerance",
            StopReason::SmallStep => "small-step",
            StopReason::MaxIterations => "max-iterations",
            StopReason::Stalled => "stalled",
            StopReason::NonFinite(NonFinite::Rollout) => "non-finite-rollout",
            StopReason::NonFinite(NonFinite::Cost) => "non-finite-cost",
            StopReason::NonFinite(NonFinite::Riccati) => "non-finite-riccati",
            StopReason::NonFinite(NonFinite::Residual) => "non-finite-residual",
        }
    }
    /// Whether this counts as converged.
    pub fn converged(self) -> bool {
        matches!(self, StopReason::Tolerance | StopReason::SmallStep)
    }
    /// Whether something went non-finite.
    pub fn non_finite(self) -> bool {
        matches!(self, StopReason::NonFinite(_))
    }
    /// The status code of this reason (see [`STOP_CODES`]).
    pub fn code(self) -> i32 {
        STOP_CODES.iter().find(|(r, _)| *r == self).map(|&(_, c)| c).expect("every StopReason has a code")
    }
    /// The reason of a status code; `None` for a code no kernel writes.
    pub fn from_code(code: i32) -> Option<Self> {
        STOP_CODES.iter().find(|(_, c)| *c == code).map(|&(r, _)| r)
    }
}

/// What the backward pass did for one problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GradStatus {
    /// Gradients computed and finite.
    #[default]
    Ok,
    /// The forward solution went non-finite ([`StopReason::NonFinite`], or non-finite states
    /// or controls): no gradient is defined; all of this problem's gradients are zero.
    MaskedSolution,
    /// The implicit-differentiation solve produced a non-finite value; all of this problem's
    /// gradients are set to zero rather than propagating it.
    MaskedNonFinite,
}

impl GradStatus {
    /// A short name for reports (`"ok"`, `"masked-solution"`, `"masked-non-finite"`).
    pub fn name(self) -> &'static str {
        match self {
            GradStatus::Ok => "ok",
            GradStatus::MaskedSolution => "masked-solution",
            GradStatus::MaskedNonFinite => "masked-non-finite",
        }
    }
    /// Whether the gradients were zeroed.
    pub fn masked(self) -> bool {
        self != GradStatus::Ok
    }
}

/// Zero one problem's gradients unless its forward solution is usable and they came out
/// finite: the rule every backend applies after its backward pass (`solution_ok`: the problem's
/// stop reason is not [`StopReason::NonFinite`] and its states and controls are finite).
pub fn mask_gradients(solution_ok: bool, grads: [&mut [f64]; 4]) -> GradStatus {
    let all_finite = solution_ok && grads.iter().all(|g| finite(g));
    mask_gradients_known(solution_ok, all_finite, grads)
}

/// [`mask_gradients`] where the caller tested the gradients' finiteness as it wrote them
/// (`grads_finite`), so they are not read back.
pub(crate) fn mask_gradients_known(solution_ok: bool, grads_finite: bool, grads: [&mut [f64]; 4]) -> GradStatus {
    let status = if !solution_ok {
        GradStatus::MaskedSolution
    } else if !grads_finite {
        GradStatus::MaskedNonFinite
    } else {
        return GradStatus::Ok;
    };
    for g in grads {
        g.fill(0.0);
    }
    status
}

/// Whether problem `i` of `sol` is usable for the backward pass (see [`mask_gradients`]).
pub fn solution_ok(sol: &Solution, i: usize, t: usize, nx: usize, nu: usize) -> bool {
    !sol.stop.get(i).is_some_and(|s| s.non_finite())
        && finite(&sol.x[i * t * nx..(i + 1) * t * nx])
        && finite(&sol.u[i * t * nu..(i + 1) * t * nu])
}

/// Whether every entry of `v` is finite: a branch-free test per block of 64, which vectorises
/// (an early-exit `iter().all` tests and branches on every entry; the gradients of one problem
/// hold T·(n² + n) values, and this test was a sixth of the backward pass's time).
#[inline(always)]
#[allow(clippy::eq_op)] // `x - x` on purpose: 0 or NaN
pub(crate) fn finite(v: &[f64]) -> bool {
    // `x - x` is 0 for a finite `x` and NaN for ±inf and NaN (a compare SSE2 vectorises).
    v.chunks(64).all(|c| c.iter().fold(true, |ok, &x| ok & (x - x == 0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `finite` is `iter().all(is_finite)` for every position of a non-finite value (inside and
    /// across the blocks of 64), every kind of one, and the extreme finite values.
    #[test]
    fn finite_equals_the_entrywise_test() {
        for len in [0, 1, 63, 64, 65, 200] {
            let base: Vec<f64> = (0..len).map(|i| [f64::MAX, -f64::MAX, f64::MIN_POSITIVE, 5e-324, -0.0, 1.5][i % 6]).collect();
            assert!(finite(&base), "len {len}");
            for pos in 0..len {
                for bad in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -f64::NAN] {
                    let mut v = base.clone();
                    v[pos] = bad;
                    assert!(!finite(&v), "len {len}, {bad} at {pos}");
                }
            }
        }
        let (mut a, mut b) = (vec![1.0; 100], vec![2.0; 3]);
        assert_eq!(mask_gradients(true, [&mut a, &mut b, &mut [], &mut []]), GradStatus::Ok);
        b[2] = f64::NAN;
        assert_eq!(mask_gradients(true, [&mut a, &mut b, &mut [], &mut []]), GradStatus::MaskedNonFinite);
        assert!(a.iter().chain(&b).all(|&v| v == 0.0));
    }
}
