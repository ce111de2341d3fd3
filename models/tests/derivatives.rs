//! The generated derivatives of every bundled model against central finite differences, and
//! one step against the equations of `shared/reference/models.md` written out by hand.

use mpc_models::{Cartpole, Pendulum, Quadrotor};
use mpc_runtime::Model;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use mpc_runtime::verify::{check_derivatives, fd_jacobian, jacobian_z, rel_err};

/// Check A, B and the weighted Hessian of `model` at `(x, u)` against finite differences.
fn check_at<M: Model>(model: &M, x: &[f64], u: &[f64], lambda: &[f64], tol: f64) {
    let c = check_derivatives(model, x, u, lambda);
    assert!(c.step_consistent, "{}: linearize's x_next differs from step", M::NAME);
    assert!(c.jacobian <= tol, "{}: Jacobian rel err {:.2e} > {tol:.0e} at x={x:?} u={u:?}", M::NAME, c.jacobian);
    assert!(c.hessian <= tol, "{}: weighted Hessian rel err {:.2e} > {tol:.0e} at x={x:?} u={u:?}", M::NAME, c.hessian);
    assert_eq!(c.hessian_asymmetry, 0.0, "{}: H not symmetric", M::NAME);
}

fn uniform(rng: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Random interior controls (strictly inside the bounds, away from the clamp kinks).
fn interior_controls<M: Model>(rng: &mut StdRng) -> Vec<f64> {
    (0..M::NU).map(|i| rng.random_range(0.9 * M::CONTROL_LOWER[i] + 0.1 * M::CONTROL_UPPER[i]..0.1 * M::CONTROL_LOWER[i] + 0.9 * M::CONTROL_UPPER[i])).collect()
}

fn random_quaternion(rng: &mut StdRng) -> Vec<f64> {
    let q = uniform(rng, 4, -1.0, 1.0);
    let n = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    q.iter().map(|v| v / n).collect()
}

#[test]
fn pendulum_derivatives_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(1);
    let m = Pendulum::default();
    for _ in 0..50 {
        let th: f64 = rng.random_range(-3.0..3.0);
        let x = vec![th.cos(), th.sin(), rng.random_range(-5.0..5.0)];
        let u = interior_controls::<Pendulum>(&mut rng);
        let lam = uniform(&mut rng, 3, -2.0, 2.0);
        check_at(&m, &x, &u, &lam, 1e-7);
    }
}

#[test]
fn cartpole_derivatives_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(2);
    let m = Cartpole::default();
    for _ in 0..50 {
        let th: f64 = rng.random_range(-3.0..3.0);
        let x = vec![rng.random_range(-1.0..1.0), rng.random_range(-2.0..2.0), th.cos(), th.sin(), rng.random_range(-3.0..3.0)];
        let u = interior_controls::<Cartpole>(&mut rng);
        let lam = uniform(&mut rng, 5, -2.0, 2.0);
        check_at(&m, &x, &u, &lam, 1e-7);
    }
}

#[test]
fn quadrotor_derivatives_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(3);
    for dt in [0.02, 0.05] {
        let m = Quadrotor { dt, ..Quadrotor::default() };
        for _ in 0..50 {
            let mut x = uniform(&mut rng, 3, -1.0, 1.0);
            x.extend(random_quaternion(&mut rng));
            x.extend(uniform(&mut rng, 3, -2.0, 2.0));
            let u = interior_controls::<Quadrotor>(&mut rng);
            let lam = uniform(&mut rng, 10, -2.0, 2.0);
            check_at(&m, &x, &u, &lam, 1e-7);
        }
    }
}

/// At ω = 0 (the hover warm start) a naive `d sqrt` gives 0/0: everything must stay finite,
/// and the Jacobian still equals (symmetric) finite differences.
#[test]
fn quadrotor_is_finite_at_zero_body_rates() {
    let m = Quadrotor::default();
    let x = [0.1, -0.2, 0.3, 0.9, 0.1, -0.3, 0.2, 0.5, -0.1, 0.2];
    let u = [m.mass * m.gravity, 0.0, 0.0, 0.0];
    let (mut xn, mut a, mut b, mut h) = ([0.0; 10], [0.0; 100], [0.0; 40], [0.0; 196]);
    m.eval_linearize(&x, &u, &mut xn, &mut a, &mut b);
    m.eval_weighted_hessian(&x, &u, &[1.0; 10], &mut h);
    assert!(xn.iter().chain(&a).chain(&b).chain(&h).all(|v| v.is_finite()), "non-finite derivative at ω = 0");
    // ∂e_vec/∂ω = sin(0.5 dt ε)/ε · I ≈ 0.025 I enters B through the quaternion rows.
    let step = |z: &[f64]| {
        let mut out = vec![0.0; 10];
        m.eval_step(&z[..10], &z[10..], &mut out);
        out
    };
    let z: Vec<f64> = x.iter().chain(&u).copied().collect();
    let fd = fd_jacobian(&step, &z, 10);
    let jac = jacobian_z(&m, &x, &u);
    assert!(rel_err(&jac, &fd) <= 1e-7, "Jacobian at ω = 0: {:.2e}", rel_err(&jac, &fd));
    // d qx'/d wx at q = identity-like is about 0.025 · qw / |q̃|: not zero.
    assert!(b[4 * 4 + 1].abs() > 1e-3);
}

// ---- one step against the equations of models.md, written out independently ----

fn pendulum_ref(x: &[f64], u: f64) -> [f64; 3] {
    let (g, m, l, dt, max_torque) = (10.0, 1.0, 1.0, 0.05, 2.0);
    let ut = u.clamp(-max_torque, max_torque);
    let th = x[1].atan2(x[0]);
    let w = x[2] + dt * ((3.0 * g / (2.0 * l)) * x[1] + 3.0 * ut / (m * l * l));
    let thn = th + dt * w;
    [thn.cos(), thn.sin(), w]
}

fn cartpole_ref(x: &[f64], u: f64) -> [f64; 5] {
    let (gravity, masscart, masspole, length, dt, force_mag) = (9.8, 1.0, 0.1, 0.5, 0.05, 100.0);
    let ut = u.clamp(-force_mag, force_mag);
    let (p, v, c, s, w) = (x[0], x[1], x[2], x[3], x[4]);
    let th = s.atan2(c);
    let mt = masscart + masspole;
    let ml = masspole * length;
    let a = (ut + ml * w * w * s) / mt;
    let alpha = (gravity * s - c * a) / (length * (4.0 / 3.0 - masspole * c * c / mt));
    let acc = a - ml * alpha * c / mt;
    let thn = th + dt * w;
    [p + dt * v, v + dt * acc, thn.cos(), thn.sin(), w + dt * alpha]
}

fn quat_mult(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [
        a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
        a[0] * b[2] + a[2] * b[0] + a[3] * b[1] - a[1] * b[3],
        a[0] * b[3] + a[3] * b[0] + a[1] * b[2] - a[2] * b[1],
    ]
}

fn quadrotor_ref(x: &[f64], u: &[f64], dt: f64) -> [f64; 10] {
    let (m, g) = (0.752, 9.8066);
    let q = [x[3], x[4], x[5], x[6]];
    let n = (u[1] * u[1] + u[2] * u[2] + u[3] * u[3]).sqrt() + 1e-8;
    let h = 0.5 * dt * n;
    let e = [h.cos(), u[1] / n * h.sin(), u[2] / n * h.sin(), u[3] / n * h.sin()];
    let qt = quat_mult(q, e);
    let qn = (qt.iter().map(|v| v * v).sum::<f64>()).sqrt() + 1e-8;
    // t = vector part of q ⊗ (0,0,0,f) ⊗ q*, as drone_ts computes it.
    let qc = [q[0], -q[1], -q[2], -q[3]];
    let t = quat_mult(quat_mult(q, [0.0, 0.0, 0.0, u[0]]), qc);
    let mut out = [0.0; 10];
    for i in 0..3 {
        out[i] = x[i] + dt * x[7 + i];
    }
    for i in 0..4 {
        out[3 + i] = qt[i] / qn;
    }
    let grav = [0.0, 0.0, -g];
    for i in 0..3 {
        out[7 + i] = x[7 + i] + dt * (t[1 + i] / m + grav[i]);
    }
    out
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "{what}: got {got:?}, want {want:?}");
    }
}

#[test]
fn one_step_equals_the_reference_equations() {
    let mut rng = StdRng::seed_from_u64(4);
    for _ in 0..100 {
        let th: f64 = rng.random_range(-3.0..3.0);
        // Off the unit circle on purpose: gravity uses `s` as it is.
        let x = [1.1 * th.cos(), 0.9 * th.sin(), rng.random_range(-5.0..5.0)];
        let u = rng.random_range(-2.0..2.0);
        let mut out = [0.0; 3];
        Pendulum::default().eval_step(&x, &[u], &mut out);
        assert_close(&out, &pendulum_ref(&x, u), 1e-12, "pendulum");

        let x = [rng.random_range(-1.0..1.0), rng.random_range(-2.0..2.0), th.cos(), th.sin(), rng.random_range(-3.0..3.0)];
        let u = rng.random_range(-100.0..100.0);
        let mut out = [0.0; 5];
        Cartpole::default().eval_step(&x, &[u], &mut out);
        assert_close(&out, &cartpole_ref(&x, u), 1e-12, "cartpole");

        for dt in [0.02, 0.05] {
            let mut x = uniform(&mut rng, 3, -1.0, 1.0);
            // Slightly off unit norm, as states are after a step.
            x.extend(random_quaternion(&mut rng).iter().map(|v| v * 1.01));
            x.extend(uniform(&mut rng, 3, -2.0, 2.0));
            let u = interior_controls::<Quadrotor>(&mut rng);
            let mut out = [0.0; 10];
            Quadrotor { dt, ..Quadrotor::default() }.eval_step(&x, &u, &mut out);
            assert_close(&out, &quadrotor_ref(&x, &u, dt), 1e-12, "quadrotor");
        }
    }
}

/// The pendulum's clamp must not zero the derivative on the bound (models.md).
#[test]
fn pendulum_clamp_derivative_is_smooth_on_the_bound() {
    let m = Pendulum::default();
    for u in [-2.0, 2.0] {
        let (mut xn, mut a, mut b) = ([0.0; 3], [0.0; 9], [0.0; 3]);
        m.eval_linearize(&[1.0, 0.0, 0.0], &[u], &mut xn, &mut a, &mut b);
        assert!((b[2] - 0.15).abs() < 1e-15, "∂ω'/∂u on the bound = {}", b[2]);
    }
}

#[test]
fn metadata_is_as_declared() {
    assert_eq!(Quadrotor::NX, 10);
    assert_eq!(Quadrotor::NU, 4);
    assert_eq!(Quadrotor::CONTROL_LOWER, &[0.0, -10.0, -10.0, -4.0]);
    assert_eq!(Quadrotor::CONTROL_UPPER, &[34.0, 10.0, 10.0, 4.0]);
    assert_eq!(Quadrotor::PARAM_NAMES, &["mass", "gravity", "dt", "quat_norm_eps", "omega_norm_eps"]);
    assert_eq!(Cartpole::PARAM_NAMES, &["gravity", "masscart", "masspole", "length", "dt", "force_mag"]);
    assert_eq!(Pendulum::PARAM_NAMES, &["g", "m", "l", "dt", "max_torque"]);
    let mut q = Quadrotor::default();
    assert_eq!(q.dt(), Some(0.05));
    q.set_param("dt", 0.02).unwrap();
    assert_eq!(q.dt, 0.02);
    assert!(q.set_param("mas", 1.0).unwrap_err().to_string().contains("mass"));
    assert!(q.set_param("mass", f64::NAN).is_err());
    assert!(!Quadrotor::IS_LINEAR);
    assert!(Quadrotor::CUDA_SOURCE.contains("namespace mpc_model_quadrotor"));
    assert!(Quadrotor::CUDA_SOURCE.starts_with("// ===="));
}
