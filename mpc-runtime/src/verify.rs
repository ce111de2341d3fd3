//! Checking a model's derivatives against central finite differences, and its lane code
//! (several problems at once) against its one-problem code.
//!
//! Every generated Jacobian and weighted Hessian is tested this way (see `models/tests` and
//! `tests/model_compiler.rs`); users can run the same check on their own models.

use crate::backend::Backend;
use crate::model::{Dynamics, LANES, Lane};
use crate::solver::{Batch, Lanes, Solution, Solver, SolverOptions};

/// Max-norm relative error `max|a - b| / max(max|b|, 1)`.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Central differences of `f: R^n → R^m` at `z`; entry `[i * n + k]` is `∂f_i/∂z_k`.
/// The step is `1e-5 · (1 + |z_k|)`.
pub fn fd_jacobian(f: &dyn Fn(&[f64]) -> Vec<f64>, z: &[f64], m: usize) -> Vec<f64> {
    let n = z.len();
    let mut j = vec![0.0; m * n];
    let mut zp = z.to_vec();
    for k in 0..n {
        let h = 1e-5 * (1.0 + z[k].abs());
        zp[k] = z[k] + h;
        let fp = f(&zp);
        zp[k] = z[k] - h;
        let fm = f(&zp);
        zp[k] = z[k];
        for i in 0..m {
            j[i * n + k] = (fp[i] - fm[i]) / (2.0 * h);
        }
    }
    j
}

/// `[A B]` (nx × (nx+nu), row-major) of a model at `(x, u)`.
pub fn jacobian_z<D: Dynamics>(model: &D, x: &[f64], u: &[f64]) -> Vec<f64> {
    let (nx, nu) = (model.nx(), model.nu());
    let n = nx + nu;
    let mut xn = vec![0.0; nx];
    let mut a = vec![0.0; nx * nx];
    let mut b = vec![0.0; nx * nu];
    model.linearize(x, u, &mut xn, &mut a, &mut b);
    let mut jac = vec![0.0; nx * n];
    for i in 0..nx {
        jac[i * n..i * n + nx].copy_from_slice(&a[i * nx..(i + 1) * nx]);
        jac[i * n + nx..(i + 1) * n].copy_from_slice(&b[i * nu..(i + 1) * nu]);
    }
    jac
}

/// How far a model's analytic derivatives are from finite differences at one point.
#[derive(Clone, Copy, Debug)]
pub struct DerivativeCheck {
    /// Relative error of `[A B]` against central differences of the step.
    pub jacobian: f64,
    /// Relative error of `Σ λ_i ∇²f_i` against central differences of `λᵀ[A B]`.
    pub hessian: f64,
    /// Largest asymmetry `|H_jk - H_kj|`.
    pub hessian_asymmetry: f64,
    /// Whether `linearize` returned the same next state as `step`, bit for bit.
    pub step_consistent: bool,
}

/// Compare the analytic Jacobians and weighted Hessian of `model` at `(x, u)` and co-state
/// `lambda` with central finite differences.
pub fn check_derivatives<D: Dynamics>(model: &D, x: &[f64], u: &[f64], lambda: &[f64]) -> DerivativeCheck {
    let (nx, nu) = (model.nx(), model.nu());
    let n = nx + nu;
    let z: Vec<f64> = x.iter().chain(u).copied().collect();
    let step = |z: &[f64]| {
        let mut out = vec![0.0; nx];
        model.step(&z[..nx], &z[nx..], &mut out);
        out
    };
    let mut xn = vec![0.0; nx];
    let (mut a, mut b) = (vec![0.0; nx * nx], vec![0.0; nx * nu]);
    model.linearize(x, u, &mut xn, &mut a, &mut b);
    let step_consistent = xn == step(&z);
    let jacobian = rel_err(&jacobian_z(model, x, u), &fd_jacobian(&step, &z, nx));
    let weighted_grad = |z: &[f64]| {
        let jac = jacobian_z(model, &z[..nx], &z[nx..]);
        (0..n).map(|k| (0..nx).map(|i| lambda[i] * jac[i * n + k]).sum()).collect::<Vec<f64>>()
    };
    let mut h = vec![0.0; n * n];
    model.weighted_hessian(x, u, lambda, &mut h);
    let mut hessian_asymmetry = 0.0f64;
    for j in 0..n {
        for k in 0..n {
            hessian_asymmetry = hessian_asymmetry.max((h[j * n + k] - h[k * n + j]).abs());
        }
    }
    let hessian = rel_err(&h, &fd_jacobian(&weighted_grad, &z, n));
    DerivativeCheck { jacobian, hessian, hessian_asymmetry, step_consistent }
}

/// Whether a model's lane code ([`Dynamics::step_lanes`], [`Dynamics::linearize_lanes`]) gives,
/// in every lane, the bits of [`Dynamics::step`] and [`Dynamics::linearize`] at that lane's
/// point: `None` when the model has no lane code, else `Some(Err(what differs))` or
/// `Some(Ok(()))`. `xs[l]`, `us[l]` are the points of the [`LANES`] lanes.
pub fn check_lanes<D: Dynamics>(model: &D, xs: &[Vec<f64>], us: &[Vec<f64>]) -> Option<Result<(), String>> {
    let (nx, nu) = (model.nx(), model.nu());
    assert!(xs.len() == LANES && us.len() == LANES, "check_lanes: one point per lane ({LANES})");
    let pack = |v: &[Vec<f64>], n: usize| -> Vec<Lane> { (0..n).map(|i| std::array::from_fn(|l| v[l][i])).collect() };
    let (xl, ul) = (pack(xs, nx), pack(us, nu));
    let mut xn = vec![[0.0; LANES]; nx];
    if !model.step_lanes(&xl, &ul, &mut xn) {
        return None;
    }
    let (mut xn2, mut al, mut bl) = (vec![[0.0; LANES]; nx], vec![[0.0; LANES]; nx * nx], vec![[0.0; LANES]; nx * nu]);
    if !model.linearize_lanes(&xl, &ul, &mut xn2, &mut al, &mut bl) {
        return Some(Err("step_lanes is implemented but linearize_lanes is not".into()));
    }
    let same = |lanes: &[Lane], l: usize, one: &[f64]| lanes.iter().zip(one).all(|(v, w)| v[l].to_bits() == w.to_bits());
    for l in 0..LANES {
        let (mut x1, mut x2) = (vec![0.0; nx], vec![0.0; nx]);
        let (mut a, mut b) = (vec![0.0; nx * nx], vec![0.0; nx * nu]);
        model.step(&xs[l], &us[l], &mut x1);
        model.linearize(&xs[l], &us[l], &mut x2, &mut a, &mut b);
        for (what, ok) in [
            ("step_lanes", same(&xn, l, &x1)),
            ("linearize_lanes' next state", same(&xn2, l, &x2)),
            ("linearize_lanes' A", same(&al, l, &a)),
            ("linearize_lanes' B", same(&bl, l, &b)),
        ] {
            if !ok {
                return Some(Err(format!("{what} differs from the one-problem code in lane {l} (x = {:?}, u = {:?})", xs[l], us[l])));
            }
        }
    }
    Some(Ok(()))
}

/// Whether solving and differentiating `batch` at once (with [`Lanes::Always`]: groups of
/// [`LANES`] problems take the lane path wherever the options allow it, whatever the machine)
/// gives every problem the bits of doing it alone (states, controls, cost, iterations, stop
/// reason, KKT residual; the gradients of a fixed upstream gradient in the options' mode):
/// `Err(what differs)` otherwise. Each problem alone is solved twice, once with no lane code
/// at all ([`Lanes::Never`], the scalar reference) and once with its line search's step sizes
/// in lanes ([`Lanes::Always`] on one problem); both must give the batch's bits. The batch
/// solved and differentiated with [`Lanes::Auto`] in the current rayon pool (whole groups for
/// the threads, the rest one by one) must give them too.
pub fn check_batch_matches_single<D: Dynamics + Clone>(
    model: &D,
    horizon: usize,
    options: &SolverOptions,
    batch: &Batch<'_>,
) -> Result<(), String> {
    let (nx, nu, t) = (model.nx(), model.nu(), horizon);
    let mut all = Solver::new(model.clone(), t, SolverOptions { lanes: Lanes::Always, ..options.clone() });
    let sol = all.try_solve(batch).map_err(|e| e.to_string())?;
    // Upstream gradients: a fixed pattern of mixed signs and sizes.
    let up = |len: usize, salt: f64| (0..len).map(|k| (0.7 * k as f64 + salt).sin() * (1.0 + (k % 3) as f64)).collect::<Vec<f64>>();
    let (gx, gu) = (up(batch.size * t * nx, 0.3), up(batch.size * t * nu, 1.1));
    let grads = all.try_backward(batch, &sol, &gx, &gu).map_err(|e| e.to_string())?;
    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    // The backward pass that tests the cost Hessians' structure itself gives the bits of the
    // one that takes it from the solve (`Solution::cost_structure`).
    let unrecorded = Solution { cost_structure: Default::default(), ..sol.clone() };
    let gt = all.try_backward(batch, &unrecorded, &gx, &gu).map_err(|e| e.to_string())?;
    let same_tested = [(&gt.cost_hess, &grads.cost_hess), (&gt.cost_lin, &grads.cost_lin), (&gt.x_init, &grads.x_init)]
        .iter()
        .all(|(a, b)| bits(a) == bits(b))
        && gt.status == grads.status;
    if !same_tested {
        return Err(format!("B = {}: the backward pass differs with the cost structure tested instead of recorded", batch.size));
    }
    let mut auto = Solver::new(model.clone(), t, SolverOptions { lanes: Lanes::Auto, ..options.clone() });
    let sa = auto.try_solve(batch).map_err(|e| e.to_string())?;
    let ga = auto.try_backward(batch, &sa, &gx, &gu).map_err(|e| e.to_string())?;
    let same_auto = [(&sa.x, &sol.x), (&sa.u, &sol.u), (&sa.cost, &sol.cost), (&sa.kkt_residual, &sol.kkt_residual)]
        .iter()
        .chain(&[(&ga.cost_hess, &grads.cost_hess), (&ga.cost_lin, &grads.cost_lin), (&ga.x_init, &grads.x_init)])
        .all(|(a, b)| bits(a) == bits(b))
        && (&sa.iterations, &sa.stop, &ga.status) == (&sol.iterations, &sol.stop, &grads.status);
    if !same_auto {
        return Err(format!("B = {}: the batch under Lanes::Auto differs from the batch in lane groups", batch.size));
    }
    let mut one = Solver::new(model.clone(), t, SolverOptions { lanes: Lanes::Never, ..options.clone() });
    let mut one_trials = Solver::new(model.clone(), t, SolverOptions { lanes: Lanes::Always, ..options.clone() });
    let n = nx + nu;
    for i in 0..batch.size {
        let single = batch.single(i, t, nx, nu);
        let s = one.try_solve(&single).map_err(|e| e.to_string())?;
        let st = one_trials.try_solve(&single).map_err(|e| e.to_string())?;
        let same_trials = bits(&st.x) == bits(&s.x)
            && bits(&st.u) == bits(&s.u)
            && st.cost[0].to_bits() == s.cost[0].to_bits()
            && (st.iterations[0], st.stop[0]) == (s.iterations[0], s.stop[0]);
        if !same_trials {
            return Err(format!(
                "problem {i} alone: with the step sizes in lanes cost {:e} ({} iterations), scalar {:e} ({} iterations)",
                st.cost[0], st.iterations[0], s.cost[0], s.iterations[0]
            ));
        }
        let g = one
            .try_backward(&single, &s, &gx[i * t * nx..(i + 1) * t * nx], &gu[i * t * nu..(i + 1) * t * nu])
            .map_err(|e| e.to_string())?;
        let same = bits(&sol.x[i * t * nx..(i + 1) * t * nx]) == bits(&s.x)
            && bits(&sol.u[i * t * nu..(i + 1) * t * nu]) == bits(&s.u)
            && sol.cost[i].to_bits() == s.cost[0].to_bits()
            && sol.kkt_residual[i].to_bits() == s.kkt_residual[0].to_bits()
            && (sol.iterations[i], sol.stop[i]) == (s.iterations[0], s.stop[0]);
        if !same {
            return Err(format!(
                "problem {i} of {}: batched cost {:e} ({} iterations, {:?}), alone {:e} ({} iterations, {:?})",
                batch.size, sol.cost[i], sol.iterations[i], sol.stop[i], s.cost[0], s.iterations[0], s.stop[0]
            ));
        }
        let same_grads = bits(&grads.cost_hess[i * t * n * n..(i + 1) * t * n * n]) == bits(&g.cost_hess)
            && bits(&grads.cost_lin[i * t * n..(i + 1) * t * n]) == bits(&g.cost_lin)
            && bits(&grads.x_init[i * nx..(i + 1) * nx]) == bits(&g.x_init)
            && grads.status[i] == g.status[0];
        if !same_grads {
            return Err(format!("problem {i} of {}: the batched gradients differ from the gradients alone", batch.size));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LinearModel;

    #[test]
    fn linear_model_passes_and_a_wrong_jacobian_fails() {
        let m = LinearModel::new(2, 1, vec![1.0, 0.1, 0.0, 1.0], vec![0.0, 0.1], None).unwrap();
        let c = check_derivatives(&m, &[0.3, -0.2], &[0.5], &[1.0, 2.0]);
        assert!(c.jacobian < 1e-9 && c.hessian < 1e-12 && c.step_consistent, "{c:?}");

        /// A model whose Jacobian is off by 1e-3 in one entry: the check must see it.
        struct Wrong(LinearModel);
        impl Dynamics for Wrong {
            fn nx(&self) -> usize { 2 }
            fn nu(&self) -> usize { 1 }
            fn step(&self, x: &[f64], u: &[f64], xn: &mut [f64]) { self.0.step(x, u, xn) }
            fn linearize(&self, x: &[f64], u: &[f64], xn: &mut [f64], a: &mut [f64], b: &mut [f64]) {
                self.0.linearize(x, u, xn, a, b);
                a[1] += 1e-3;
            }
            fn weighted_hessian(&self, x: &[f64], u: &[f64], l: &[f64], h: &mut [f64]) { self.0.weighted_hessian(x, u, l, h) }
        }
        let c = check_derivatives(&Wrong(m), &[0.3, -0.2], &[0.5], &[1.0, 2.0]);
        assert!(c.jacobian > 5e-4, "{c:?}");
    }
}
