//! The generated derivatives of every zoo model against central finite differences
//! (`mpc_runtime::verify::check_derivatives`), at 5 seeded random points each, plus finiteness of
//! `step` there and along short random rollouts from the scenarios' starts.
//!
//! Tolerances. `check_derivatives` reports max-norm errors relative to `max(max|exact|, 1)`.
//! Central differences with step `h = 1e-5 (1 + |z|)` have truncation error `~h² |f'''|` and
//! rounding error `~ε |f| / h`; for every model here both are far below the thresholds, which
//! are the same for all models: Jacobian `[A B]` rel. err. < 1e-6, weighted Hessian
//! `Σ λ_i ∇²f_i` rel. err. < 1e-5 (the Hessian is compared with differences of the exact
//! Jacobian, one order less accurate). The largest error seen per model is printed
//! (`cargo test -p mpc-zoo --test derivatives -- --nocapture`).

use mpc_runtime::LANES;
use mpc_runtime::verify::{check_derivatives, check_lanes};
use mpc_runtime::Model;
use mpc_zoo::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const JACOBIAN_TOL: f64 = 1e-6;
const HESSIAN_TOL: f64 = 1e-5;
const POINTS: usize = 5;

/// Where to sample states: a box per state, and optionally the index of a quaternion's scalar
/// part (the 4 entries from there are replaced by a random unit quaternion).
struct Sampling {
    lo: Vec<f64>,
    hi: Vec<f64>,
    quat_at: Option<usize>,
}

fn state_sample(rng: &mut StdRng, s: &Sampling) -> Vec<f64> {
    let mut x: Vec<f64> = s.lo.iter().zip(&s.hi).map(|(&lo, &hi)| rng.random_range(lo..hi)).collect();
    if let Some(k) = s.quat_at {
        let q: Vec<f64> = (0..4).map(|_| rng.random_range(-1.0..1.0)).collect();
        let n = q.iter().map(|v| v * v).sum::<f64>().sqrt();
        for i in 0..4 {
            x[k + i] = q[i] / n;
        }
    }
    x
}

/// Random controls strictly inside the model's bounds (10 %–90 % of the range).
fn interior_controls<M: Model>(rng: &mut StdRng) -> Vec<f64> {
    (0..M::NU)
        .map(|i| {
            let (lo, hi) = (M::CONTROL_LOWER[i], M::CONTROL_UPPER[i]);
            rng.random_range(0.9 * lo + 0.1 * hi..0.1 * lo + 0.9 * hi)
        })
        .collect()
}

fn step_of<M: Model>(m: &M, x: &[f64], u: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; M::NX];
    m.eval_step(x, u, &mut out);
    out
}

/// The derivative check at `POINTS` random points, and finite steps.
fn check_model<M: Model + ZooCase>(seed: u64, sampling: Sampling) {
    let m = M::default();
    assert_eq!(sampling.lo.len(), M::NX, "{}: sampling box has the wrong size", M::NAME);
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut worst_jac, mut worst_hess) = (0.0f64, 0.0f64);
    for _ in 0..POINTS {
        let x = state_sample(&mut rng, &sampling);
        let u = interior_controls::<M>(&mut rng);
        let lam: Vec<f64> = (0..M::NX).map(|_| rng.random_range(-2.0..2.0)).collect();
        let xn = step_of(&m, &x, &u);
        assert!(xn.iter().all(|v| v.is_finite()), "{}: non-finite step {xn:?} at x={x:?} u={u:?}", M::NAME);
        let c = check_derivatives(&m, &x, &u, &lam);
        assert!(c.step_consistent, "{}: linearize's x_next differs from step at x={x:?} u={u:?}", M::NAME);
        assert!(c.jacobian < JACOBIAN_TOL, "{}: Jacobian rel err {:.2e} >= {JACOBIAN_TOL:.0e} at x={x:?} u={u:?}", M::NAME, c.jacobian);
        assert!(c.hessian < HESSIAN_TOL, "{}: weighted Hessian rel err {:.2e} >= {HESSIAN_TOL:.0e} at x={x:?} u={u:?}", M::NAME, c.hessian);
        assert_eq!(c.hessian_asymmetry, 0.0, "{}: H not symmetric", M::NAME);
        worst_jac = worst_jac.max(c.jacobian);
        worst_hess = worst_hess.max(c.hessian);
    }
    // The lane code (several problems at once, used by batched solves) gives the one-problem
    // code's bits in every lane.
    let xs: Vec<Vec<f64>> = (0..LANES).map(|_| state_sample(&mut rng, &sampling)).collect();
    let us: Vec<Vec<f64>> = (0..LANES).map(|_| interior_controls::<M>(&mut rng)).collect();
    match check_lanes(&m, &xs, &us) {
        Some(Ok(())) => {}
        Some(Err(e)) => panic!("{}: {e}", M::NAME),
        None => panic!("{}: the generated model has no lane code", M::NAME),
    }
    eprintln!("{:<22} nx={:<2} nu={} {:<8} worst Jacobian rel err {worst_jac:.1e}, Hessian {worst_hess:.1e}", M::NAME, M::NX, M::NU, M::TIME_MODEL.to_string());

    // Short rollouts from the scenario's starts with random controls in the tight box stay finite.
    let sc = M::scenario();
    for x0 in &sc.x_starts {
        let mut x = x0.clone();
        for t in 0..sc.horizon {
            let u: Vec<f64> = (0..M::NU).map(|i| rng.random_range(sc.u_lower_tight[i]..=sc.u_upper_tight[i])).collect();
            x = step_of(&m, &x, &u);
            assert!(x.iter().all(|v| v.is_finite()), "{}: rollout from {x0:?} non-finite at t={t}: {x:?}", M::NAME);
        }
    }
}

#[test]
fn acrobot() {
    use std::f64::consts::PI;
    check_model::<Acrobot>(11, Sampling { lo: vec![-PI, -PI, -4.0, -6.0], hi: vec![PI, PI, 4.0, 6.0], quat_at: None });
}

#[test]
fn boat() {
    check_model::<Boat>(12, Sampling { lo: vec![-50.0, -50.0, -3.0, -1.0, -1.0], hi: vec![50.0, 50.0, 3.0, 6.0, 1.0], quat_at: None });
}

#[test]
fn unicycle_euler() {
    check_model::<UnicycleEuler>(13, Sampling { lo: vec![-5.0, -5.0, -3.0], hi: vec![5.0, 5.0, 3.0], quat_at: None });
}

#[test]
fn planar_quadrotor() {
    check_model::<PlanarQuadrotor>(14, Sampling { lo: vec![-2.0, -2.0, -1.0, -3.0, -3.0, -5.0], hi: vec![2.0, 2.0, 1.0, 3.0, 3.0, 5.0], quat_at: None });
}

#[test]
fn rigid_body_quat() {
    let mut lo = vec![-2.0; 3];
    lo.extend([-1.0; 4]); // replaced by a random unit quaternion
    lo.extend([-3.0; 3]);
    lo.extend([-1.0; 3]);
    let hi: Vec<f64> = lo.iter().map(|v| -v).collect();
    check_model::<RigidBodyQuat>(15, Sampling { lo, hi, quat_at: Some(3) });
}

#[test]
fn stiff_mass_spring() {
    // x2 spans both sides of the wall (0.3 m).
    check_model::<StiffMassSpring>(16, Sampling { lo: vec![-0.1, -2.0, 0.1, -2.0], hi: vec![0.2, 2.0, 0.34, 2.0], quat_at: None });
    // The only curvature is the contact's `k_c δ (1 + α v2)`: check points in contact explicitly,
    // where the Hessian is not zero, so the Hessian comparison means something.
    let m = StiffMassSpring::default();
    for (x, u) in [([0.1, 0.5, 0.31, 0.5], 10.0), ([0.05, -1.0, 0.305, 1.5], -30.0), ([0.12, 0.0, 0.32, -0.5], 45.0)] {
        let c = check_derivatives(&m, &x, &[u], &[0.3, -1.2, 0.7, 1.9]);
        assert!(c.jacobian < JACOBIAN_TOL && c.hessian < HESSIAN_TOL && c.step_consistent, "in contact at {x:?}: {c:?}");
        let mut h = [0.0; 25];
        m.eval_weighted_hessian(&x, &[u], &[0.3, -1.2, 0.7, 1.9], &mut h);
        assert!(h.iter().any(|v| v.abs() > 1.0), "in contact at {x:?} the weighted Hessian should not vanish: {h:?}");
    }
}

#[test]
fn cstr() {
    check_model::<Cstr>(17, Sampling { lo: vec![0.05, 290.0], hi: vec![1.0, 400.0], quat_at: None });
}

#[test]
fn two_link_arm() {
    use std::f64::consts::PI;
    check_model::<TwoLinkArm>(18, Sampling { lo: vec![-PI, -PI, -5.0, -5.0], hi: vec![PI, PI, 5.0, 5.0], quat_at: None });
}

#[test]
fn three_link_arm_stress() {
    use std::f64::consts::PI;
    check_model::<ThreeLinkArmStress>(19, Sampling { lo: vec![-PI, -PI, -PI, -4.0, -4.0, -4.0], hi: vec![PI, PI, PI, 4.0, 4.0, 4.0], quat_at: None });
}

/// Every scenario has the model's sizes, a tight box inside the model's box, and finite data.
#[test]
fn scenarios_are_consistent() {
    #[derive(Clone)]
    struct Shape;
    impl ZooVisitor for Shape {
        type Output = ();
        fn visit<M: Model + ZooCase>(self) {
            let s = M::scenario();
            let n = M::NAME;
            assert_eq!(s.x_starts.len(), 3, "{n}: three starts");
            assert!(s.x_starts.iter().all(|x| x.len() == M::NX && x.iter().all(|v| v.is_finite())), "{n}: start size");
            assert_eq!(s.x_goal.len(), M::NX, "{n}: goal size");
            assert_eq!(s.q_diag.len(), M::NX, "{n}: q size");
            assert_eq!(s.r_diag.len(), M::NU, "{n}: r size");
            assert!(s.q_diag.iter().chain(&s.r_diag).all(|&w| w >= 0.0 && w.is_finite()), "{n}: weights");
            assert!(s.r_diag.iter().all(|&w| w > 0.0), "{n}: control weights positive");
            assert!((15..=30).contains(&s.horizon), "{n}: horizon");
            for i in 0..M::NU {
                assert!(
                    M::CONTROL_LOWER[i] <= s.u_lower_tight[i] && s.u_lower_tight[i] < s.u_upper_tight[i] && s.u_upper_tight[i] <= M::CONTROL_UPPER[i],
                    "{n}: tight box of control {i} not inside the model's"
                );
                assert!(s.u_lower_tight[i] > M::CONTROL_LOWER[i] || s.u_upper_tight[i] < M::CONTROL_UPPER[i], "{n}: control {i}: tight box is not tighter");
            }
        }
    }
    let visited = for_each(Shape);
    assert_eq!(visited.len(), ZOO.len());
    assert!(dispatch("pendulum", Shape).is_none());
    for name in ZOO {
        assert!(cuda_source(name).unwrap().contains(&format!("namespace mpc_model_{name}")), "{name}: CUDA source");
        assert!(generated_rust(name).is_some());
    }
}

// ---- physics sanity: the hand-derived mechanics conserve energy without friction or input ----

/// Run `steps` steps with zero control and return the largest |E(x_t) − E(x_0)| / scale.
fn energy_drift<M: Model>(m: &M, x0: &[f64], steps: usize, energy: impl Fn(&[f64]) -> f64) -> f64 {
    let e0 = energy(x0);
    let mut x = x0.to_vec();
    let mut worst = 0.0f64;
    for _ in 0..steps {
        x = step_of(m, &x, &vec![0.0; M::NU]);
        worst = worst.max((energy(&x) - e0).abs());
    }
    worst / e0.abs().max(1.0)
}

/// With friction off, RK4 at the model's step keeps the total energy of each mechanism to a
/// small drift over 2 s of free motion (a wrong Coriolis or gravity term breaks this at once).
#[test]
fn mechanisms_conserve_energy_without_friction_or_torque() {
    let acro = Acrobot { friction: 0.0, ..Acrobot::default() };
    let e_acro = |x: &[f64]| {
        let a = &acro;
        let d11 = a.m1 * a.lc1 * a.lc1 + a.m2 * (a.l1 * a.l1 + a.lc2 * a.lc2 + 2.0 * a.l1 * a.lc2 * x[1].cos()) + a.i1 + a.i2;
        let d12 = a.m2 * (a.lc2 * a.lc2 + a.l1 * a.lc2 * x[1].cos()) + a.i2;
        let d22 = a.m2 * a.lc2 * a.lc2 + a.i2;
        let kin = 0.5 * (d11 * x[2] * x[2] + 2.0 * d12 * x[2] * x[3] + d22 * x[3] * x[3]);
        let pot = -(a.m1 * a.lc1 + a.m2 * a.l1) * a.g * x[0].cos() - a.m2 * a.lc2 * a.g * (x[0] + x[1]).cos();
        kin + pot
    };
    let drift = energy_drift(&acro, &[1.0, -0.5, 0.5, 1.0], 40, e_acro);
    eprintln!("acrobot energy drift {drift:.2e}");
    assert!(drift < 1e-3, "acrobot energy drift {drift:.2e}");

    let arm = TwoLinkArm { damping: 0.0, ..TwoLinkArm::default() };
    let e_arm = |x: &[f64]| {
        let a = &arm;
        let (c1, c2) = (0.5 * a.l1, 0.5 * a.l2);
        let (i1, i2) = (a.m1 * a.l1 * a.l1 / 12.0, a.m2 * a.l2 * a.l2 / 12.0);
        let m11 = i1 + i2 + a.m1 * c1 * c1 + a.m2 * (a.l1 * a.l1 + c2 * c2 + 2.0 * a.l1 * c2 * x[1].cos());
        let m12 = i2 + a.m2 * (c2 * c2 + a.l1 * c2 * x[1].cos());
        let m22 = i2 + a.m2 * c2 * c2;
        let kin = 0.5 * (m11 * x[2] * x[2] + 2.0 * m12 * x[2] * x[3] + m22 * x[3] * x[3]);
        let pot = a.g * (a.m1 * c1 * x[0].sin() + a.m2 * (a.l1 * x[0].sin() + c2 * (x[0] + x[1]).sin()));
        kin + pot
    };
    // Its light forearm swings fast: at its own dt (0.02 s) RK4 drifts ~3e-3 here; at dt / 5 the
    // drift must fall by far more than the equations' errors would allow (RK4: ~5⁴ = 625×).
    let drift = energy_drift(&arm, &[0.3, 0.8, 1.0, -2.0], 100, &e_arm);
    let fine = TwoLinkArm { dt: arm.dt / 5.0, ..arm.clone() };
    let drift_fine = energy_drift(&fine, &[0.3, 0.8, 1.0, -2.0], 500, &e_arm);
    eprintln!("two-link arm energy drift {drift:.2e} (dt / 5: {drift_fine:.2e})");
    assert!(drift < 1e-2 && drift_fine < 2e-5, "two-link arm energy drift {drift:.2e}, at dt / 5 {drift_fine:.2e}");

    // The 3-link arm's energy from link kinematics (centre-of-mass velocities), independent of
    // the absolute-angle mass matrix the model uses.
    let arm3 = ThreeLinkArmStress { damping: 0.0, ..ThreeLinkArmStress::default() };
    let e_arm3 = |x: &[f64]| {
        let a = &arm3;
        let th = [x[0], x[0] + x[1], x[0] + x[1] + x[2]];
        let w = [x[3], x[3] + x[4], x[3] + x[4] + x[5]];
        let l = [a.l1, a.l2, a.l3];
        let m = [a.m1, a.m2, a.m3];
        let inertia = [a.inertia1, a.inertia2, a.inertia3];
        let (mut joint_v, mut joint_y) = ([0.0f64; 2], 0.0f64);
        let mut e = 0.0;
        for i in 0..3 {
            let c = 0.5 * l[i];
            let vc = [joint_v[0] - c * th[i].sin() * w[i], joint_v[1] + c * th[i].cos() * w[i]];
            let yc = joint_y + c * th[i].sin();
            e += 0.5 * m[i] * (vc[0] * vc[0] + vc[1] * vc[1]) + 0.5 * inertia[i] * w[i] * w[i] + m[i] * a.g * yc;
            joint_v = [joint_v[0] - l[i] * th[i].sin() * w[i], joint_v[1] + l[i] * th[i].cos() * w[i]];
            joint_y += l[i] * th[i].sin();
        }
        e
    };
    // The chain whips (a triple pendulum falling): at dt = 0.02 s RK4 drifts ~3e-2 over 2 s;
    // the drift falls at RK4's rate with dt (~4e-5 at dt / 5), which a wrong term would stop.
    let x0 = [0.3, 0.8, -0.6, 1.0, -2.0, 1.5];
    let drift = energy_drift(&arm3, &x0, 100, &e_arm3);
    let fine = ThreeLinkArmStress { dt: arm3.dt / 5.0, ..arm3.clone() };
    let drift_fine = energy_drift(&fine, &x0, 500, &e_arm3);
    eprintln!("three-link arm energy drift {drift:.2e} (dt / 5: {drift_fine:.2e})");
    assert!(drift < 0.1 && drift_fine < 5e-4, "three-link arm energy drift {drift:.2e}, at dt / 5 {drift_fine:.2e}");

    // Torque-free rigid body: rotational energy and |q| are kept.
    let body = RigidBodyQuat::default();
    let e_rot = |x: &[f64]| 0.5 * (body.jxx * x[7] * x[7] + body.jyy * x[8] * x[8] + body.jzz * x[9] * x[9]);
    let n = (1.0f64 + 0.04 + 0.09 + 0.16).sqrt();
    let x0 = [0.0, 0.0, 0.0, 1.0 / n, 0.2 / n, -0.3 / n, 0.4 / n, 2.0, -1.0, 3.0, 0.0, 0.0, 0.0];
    let drift = energy_drift(&body, &x0, 40, e_rot);
    eprintln!("rigid body rotational energy drift {drift:.2e}");
    assert!(drift < 1e-4, "rigid body rotational energy drift {drift:.2e}");
    let mut x = x0.to_vec();
    for _ in 0..40 {
        x = step_of(&body, &x, &[0.0; 6]);
    }
    let qn = (x[3] * x[3] + x[4] * x[4] + x[5] * x[5] + x[6] * x[6]).sqrt();
    assert!((qn - 1.0).abs() < 1e-6, "|q| = {qn} after 2 s");
}

/// Equilibria written in the docs are equilibria of the models.
#[test]
fn documented_equilibria_hold() {
    let quad = PlanarQuadrotor::default();
    let hover = quad.mass * quad.g / 2.0;
    let x = [0.3, 1.0, 0.0, 0.0, 0.0, 0.0];
    let xn = step_of(&quad, &x, &[hover, hover]);
    assert!(xn.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-12), "hover: {xn:?}");

    let x = [0.0, 0.0, 0.0, 0.0];
    let xn = step_of(&Acrobot::default(), &x, &[0.0]);
    assert!(xn.iter().all(|v| v.abs() < 1e-12), "acrobot hanging: {xn:?}");

    // CSTR: ca = 0.5, T = 350 K is (nearly) steady for tc ≈ 326 K.
    let cstr = Cstr::default();
    let mut x = vec![0.5, 350.0];
    for _ in 0..60 {
        x = step_of(&cstr, &x, &[326.0]);
    }
    assert!((x[0] - 0.5).abs() < 0.01 && (x[1] - 350.0).abs() < 0.5, "CSTR after 1 h at tc = 326 K: {x:?}");

    // Stiff pair at rest at the spring's rest length, away from the wall, stays there.
    let x = [0.0, 0.0, 0.2, 0.0];
    let xn = step_of(&StiffMassSpring::default(), &x, &[0.0]);
    assert!(xn.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-15), "stiff pair: {xn:?}");
}
