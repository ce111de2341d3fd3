//! A batch whose problems each have their own dynamics (per-problem parameters: one mass per
//! environment), as a [`Backend`]: one [`Solver`] per problem, the problems claimed by the
//! threads as a [`Solver`]'s own are ([`super::runs::for_each_claimed`]).

use super::{Batch, Gradients, Solution, Solver, SolverOptions, runs};
use crate::backend::{Backend, BackendError, BackendKind, check_backward};
use crate::model::Dynamics;

/// Solves problem `i` of every batch with `models[i]` (the batch size is fixed at the number of
/// models). Each problem has a solver of its own, built once with the backend and reused, so the
/// results equal [`Solver`] on each problem alone, bit for bit. Per problem it keeps its
/// solution and gradients (and a copy of the solution the backward pass is given), reused from
/// call to call.
pub struct SolveEach<D: Dynamics> {
    solvers: Vec<Solver<D>>,
    horizon: usize,
    dims: (usize, usize),
    /// Per problem: its solution, its gradients, the solution given to the backward pass.
    parts: Vec<(Solution, Gradients, Solution)>,
    /// The claiming workers' (empty) workspaces: each problem's are in its solver.
    workers: Vec<()>,
}

impl<D: Dynamics + Clone> SolveEach<D> {
    /// One solver per model, all with `horizon` and `options`. Panics on an empty `models`.
    pub fn new(models: Vec<D>, horizon: usize, options: SolverOptions) -> Self {
        assert!(!models.is_empty(), "SolveEach: at least one model");
        let dims = (models[0].nx(), models[0].nu());
        let solvers: Vec<_> = models.into_iter().map(|m| Solver::new(m, horizon, options.clone())).collect();
        let parts = solvers.iter().map(|_| Default::default()).collect();
        SolveEach { solvers, horizon, dims, parts, workers: Vec::new() }
    }
}

impl<D: Dynamics + Send> SolveEach<D> {
    /// [`Solver::kkt_residuals`] of each problem's controls `u` (B×T×nu) under its own model
    /// (for solutions computed elsewhere, e.g. on a GPU). Panics on wrong lengths.
    pub fn kkt_residuals(&mut self, batch: &Batch<'_>, u: &[f64]) -> Vec<f64> {
        let (t, (nx, nu)) = (self.horizon, self.dims);
        assert_eq!(batch.size, self.solvers.len(), "SolveEach::kkt_residuals: one model per problem");
        let mut out = vec![0.0; batch.size];
        runs::ensure_pool(&mut self.workers, runs::workers(batch.size), |_| true, || ());
        runs::for_each_claimed(&mut self.workers, self.solvers.iter_mut().zip(out.iter_mut()), |i, _, (s, r)| {
            *r = s.kkt_residuals(&batch.single(i, t, nx, nu), &u[i * t * nu..(i + 1) * t * nu])[0];
        });
        out
    }
}

impl<D: Dynamics> SolveEach<D> {
    fn check_size(&self, b: usize) -> Result<(), BackendError> {
        if b == self.solvers.len() {
            Ok(())
        } else {
            Err(BackendError::Shape(format!(
                "batch: {b} problems for {} per-problem models (one model per problem)",
                self.solvers.len()
            )))
        }
    }
}

/// Problem `i` of a batch's solution into `one`, a solution of a batch of one (its vectors
/// reused).
fn part_into(sol: &Solution, i: usize, t: usize, nx: usize, nu: usize, one: &mut Solution) {
    fn pick<T: Copy>(dst: &mut Vec<T>, src: &[T], i: usize, k: usize) {
        dst.clear();
        dst.extend_from_slice(src.get(i * k..(i + 1) * k).unwrap_or_default());
    }
    pick(&mut one.x, &sol.x, i, t * nx);
    pick(&mut one.u, &sol.u, i, t * nu);
    pick(&mut one.cost, &sol.cost, i, 1);
    pick(&mut one.iterations, &sol.iterations, i, 1);
    pick(&mut one.converged, &sol.converged, i, 1);
    pick(&mut one.kkt_residual, &sol.kkt_residual, i, 1);
    pick(&mut one.stop, &sol.stop, i, 1);
}

/// `dst` = the concatenation of `field(part)` over the parts, its capacity reused.
fn gather<P, T: Copy>(dst: &mut Vec<T>, parts: &[P], field: impl Fn(&P) -> &[T]) {
    dst.clear();
    for p in parts {
        dst.extend_from_slice(field(p));
    }
}

impl<D: Dynamics + Send> Backend for SolveEach<D> {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn horizon(&self) -> usize {
        self.horizon
    }

    fn dims(&self) -> (usize, usize) {
        self.dims
    }

    fn try_solve_into(&mut self, batch: &Batch<'_>, sol: &mut Solution) -> Result<(), BackendError> {
        let (t, (nx, nu)) = (self.horizon, self.dims);
        self.check_size(batch.size)?;
        batch.check(t, nx, nu).map_err(BackendError::Shape)?;
        runs::ensure_pool(&mut self.workers, runs::workers(batch.size), |_| true, || ());
        runs::for_each_claimed(&mut self.workers, self.solvers.iter_mut().zip(self.parts.iter_mut()), |i, _, (s, (p, _, _))| {
            s.solve_into(&batch.single(i, t, nx, nu), p);
        });
        let parts = &self.parts;
        gather(&mut sol.x, parts, |p| &p.0.x);
        gather(&mut sol.u, parts, |p| &p.0.u);
        gather(&mut sol.cost, parts, |p| &p.0.cost);
        gather(&mut sol.iterations, parts, |p| &p.0.iterations);
        gather(&mut sol.converged, parts, |p| &p.0.converged);
        gather(&mut sol.kkt_residual, parts, |p| &p.0.kkt_residual);
        gather(&mut sol.stop, parts, |p| &p.0.stop);
        Ok(())
    }

    fn try_backward_into(
        &mut self,
        batch: &Batch<'_>,
        sol: &Solution,
        grad_x: &[f64],
        grad_u: &[f64],
        out: &mut Gradients,
    ) -> Result<(), BackendError> {
        let (t, (nx, nu)) = (self.horizon, self.dims);
        self.check_size(batch.size)?;
        check_backward(batch, sol, grad_x, grad_u, t, nx, nu)?;
        runs::ensure_pool(&mut self.workers, runs::workers(batch.size), |_| true, || ());
        runs::for_each_claimed(&mut self.workers, self.solvers.iter_mut().zip(self.parts.iter_mut()), |i, _, (s, (_, g, given))| {
            let (gx, gu) = (&grad_x[i * t * nx..(i + 1) * t * nx], &grad_u[i * t * nu..(i + 1) * t * nu]);
            part_into(sol, i, t, nx, nu, given);
            s.backward_into(&batch.single(i, t, nx, nu), given, gx, gu, g);
        });
        let parts = &self.parts;
        gather(&mut out.cost_hess, parts, |p| &p.1.cost_hess);
        gather(&mut out.cost_lin, parts, |p| &p.1.cost_lin);
        gather(&mut out.x_init, parts, |p| &p.1.x_init);
        gather(&mut out.params, parts, |p| &p.1.params);
        gather(&mut out.status, parts, |p| &p.1.status);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LinearModel;

    fn model(k: f64) -> LinearModel {
        LinearModel::new(2, 1, vec![1.0, 0.1, 0.0, k], vec![0.0, 0.1], None).unwrap()
    }

    /// Each problem equals its own solver alone, bit for bit, forward and backward; a batch of
    /// the wrong size is a shape error, not a panic.
    #[test]
    fn equals_each_problem_alone() {
        let (t, b) = (6, 3);
        let models: Vec<_> = [0.9, 1.0, 1.1].into_iter().map(model).collect();
        let x0 = [1.0, 0.0, -0.5, 0.2, 0.3, -1.0];
        let cm: Vec<f64> = (0..b * t).flat_map(|_| [1.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.1]).collect();
        let cv: Vec<f64> = (0..b * t * 3).map(|i| 0.01 * i as f64).collect();
        let lo = [-0.5];
        let hi = [0.5];
        let batch = Batch {
            size: b,
            x_init: &x0,
            cost_hess: &cm,
            cost_lin: &cv,
            u_lower: crate::Bound::PerControl(&lo),
            u_upper: crate::Bound::PerControl(&hi),
            u_init: None,
        };
        let opts = SolverOptions { grad_params: true, ..SolverOptions::default() };
        let mut each = SolveEach::new(models.clone(), t, opts.clone());
        let sol = each.try_solve(&batch).unwrap();
        let gx: Vec<f64> = (0..b * t * 2).map(|i| (i as f64).sin()).collect();
        let gu = vec![1.0; b * t];
        let g = each.try_backward(&batch, &sol, &gx, &gu).unwrap();
        for (i, m) in models.into_iter().enumerate() {
            let mut alone = Solver::new(m, t, opts.clone());
            let one = batch.single(i, t, 2, 1);
            let s = alone.solve(&one);
            assert_eq!(s.u[..], sol.u[i * t..(i + 1) * t]);
            assert_eq!(s.x[..], sol.x[i * t * 2..(i + 1) * t * 2]);
            let gi = alone.backward(&one, &s, &gx[i * t * 2..(i + 1) * t * 2], &gu[i * t..(i + 1) * t]);
            assert_eq!(gi.cost_lin[..], g.cost_lin[i * t * 3..(i + 1) * t * 3]);
            let np = gi.params.len();
            assert!(np > 0);
            assert_eq!(gi.params[..], g.params[i * np..(i + 1) * np]);
        }
        let two = Batch { size: 2, x_init: &x0[..4], cost_hess: &cm[..2 * t * 9], cost_lin: &cv[..2 * t * 3], ..batch };
        assert!(matches!(each.try_solve(&two), Err(BackendError::Shape(m)) if m.contains("3 per-problem models")));
    }
}
