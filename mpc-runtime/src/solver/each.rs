//! A batch whose problems each have their own dynamics (per-problem parameters: one mass per
//! environment), as a [`Backend`]: one [`Solver`] per problem, the problems in parallel.

use super::{Batch, Gradients, Solution, Solver, SolverOptions};
use crate::backend::{Backend, BackendError, BackendKind, check_backward};
use crate::model::Dynamics;
use rayon::prelude::*;

/// Solves problem `i` of every batch with `models[i]` (the batch size is fixed at the number of
/// models). Each problem has a solver of its own, built once with the backend and reused, so the
/// results equal [`Solver`] on each problem alone, bit for bit.
pub struct SolveEach<D: Dynamics> {
    solvers: Vec<Solver<D>>,
    horizon: usize,
    dims: (usize, usize),
}

impl<D: Dynamics + Clone> SolveEach<D> {
    /// One solver per model, all with `horizon` and `options`. Panics on an empty `models`.
    pub fn new(models: Vec<D>, horizon: usize, options: SolverOptions) -> Self {
        assert!(!models.is_empty(), "SolveEach: at least one model");
        let dims = (models[0].nx(), models[0].nu());
        let solvers = models.into_iter().map(|m| Solver::new(m, horizon, options.clone())).collect();
        SolveEach { solvers, horizon, dims }
    }
}

impl<D: Dynamics + Send> SolveEach<D> {
    /// [`Solver::kkt_residuals`] of each problem's controls `u` (B×T×nu) under its own model
    /// (for solutions computed elsewhere, e.g. on a GPU). Panics on wrong lengths.
    pub fn kkt_residuals(&mut self, batch: &Batch<'_>, u: &[f64]) -> Vec<f64> {
        let (t, (nx, nu)) = (self.horizon, self.dims);
        assert_eq!(batch.size, self.solvers.len(), "SolveEach::kkt_residuals: one model per problem");
        self.solvers
            .par_iter_mut()
            .enumerate()
            .flat_map_iter(|(i, s)| s.kkt_residuals(&batch.single(i, t, nx, nu), &u[i * t * nu..(i + 1) * t * nu]))
            .collect()
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

/// Problem `i` of a batch's solution, as the solution of a batch of one.
fn part(sol: &Solution, i: usize, t: usize, nx: usize, nu: usize) -> Solution {
    let pick = |v: &[f64], k: usize| v.get(i * k..(i + 1) * k).map(<[f64]>::to_vec).unwrap_or_default();
    Solution {
        x: pick(&sol.x, t * nx),
        u: pick(&sol.u, t * nu),
        cost: pick(&sol.cost, 1),
        iterations: sol.iterations.get(i).copied().into_iter().collect(),
        converged: sol.converged.get(i).copied().into_iter().collect(),
        kkt_residual: pick(&sol.kkt_residual, 1),
        stop: sol.stop.get(i).copied().into_iter().collect(),
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
        let parts: Vec<Solution> =
            self.solvers.par_iter_mut().enumerate().map(|(i, s)| s.solve(&batch.single(i, t, nx, nu))).collect();
        *sol = Solution::default();
        for p in parts {
            sol.x.extend(p.x);
            sol.u.extend(p.u);
            sol.cost.extend(p.cost);
            sol.iterations.extend(p.iterations);
            sol.converged.extend(p.converged);
            sol.kkt_residual.extend(p.kkt_residual);
            sol.stop.extend(p.stop);
        }
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
        let parts: Vec<Gradients> = self
            .solvers
            .par_iter_mut()
            .enumerate()
            .map(|(i, s)| {
                let (gx, gu) = (&grad_x[i * t * nx..(i + 1) * t * nx], &grad_u[i * t * nu..(i + 1) * t * nu]);
                s.backward(&batch.single(i, t, nx, nu), &part(sol, i, t, nx, nu), gx, gu)
            })
            .collect();
        *out = Gradients::default();
        for g in parts {
            out.cost_hess.extend(g.cost_hess);
            out.cost_lin.extend(g.cost_lin);
            out.x_init.extend(g.x_init);
            out.params.extend(g.params);
            out.status.extend(g.status);
        }
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
