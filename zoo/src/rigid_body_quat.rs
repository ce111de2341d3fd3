//! A free-flying rigid body (small spacecraft / space robot) with quaternion attitude.

use mpc_macros::mpc_model;

/// Free-flying 6-DOF rigid body, e.g. a small spacecraft or an Astrobee-like free flyer, with
/// three body torques and three body forces (thrusters). Newton–Euler equations with a diagonal
/// inertia; attitude as a unit quaternion (scalar first, body → world). See Markley & Crassidis,
/// *Fundamentals of Spacecraft Attitude Determination and Control* (2014), §3.1 (kinematics)
/// and §3.3 (Euler's equations).
///
/// States: position `px, py, pz` (m, world), quaternion `qw, qx, qy, qz`, body angular
/// velocity `wx, wy, wz` (rad/s), world velocity `vx, vy, vz` (m/s). Controls: body torques
/// `tx, ty, tz` (N·m) and body forces `fx, fy, fz` (N).
///
/// * `q̇ = ½ q ⊗ (0, ω) + k (1 − |q|²) q` (the last term, Baumgarte-style, pulls the norm
///   back to 1 against integration drift; it is zero on the unit sphere);
/// * `J ω̇ = τ − ω × J ω` with `J = diag(jxx, jyy, jzz)` (kg·m²);
/// * `ṗ = v`, `m v̇ = R(q) f`.
///
/// Continuous time, RK4, dt = 0.05 s.
#[mpc_model(dt = 0.05, integrator = rk4)]
pub fn rigid_body_quat(
    #[state] px: f64,
    #[state] py: f64,
    #[state] pz: f64,
    #[state] qw: f64,
    #[state] qx: f64,
    #[state] qy: f64,
    #[state] qz: f64,
    #[state] wx: f64,
    #[state] wy: f64,
    #[state] wz: f64,
    #[state] vx: f64,
    #[state] vy: f64,
    #[state] vz: f64,
    #[control(min = -0.2, max = 0.2)] tx: f64,
    #[control(min = -0.2, max = 0.2)] ty: f64,
    #[control(min = -0.2, max = 0.2)] tz: f64,
    #[control(min = -2.0, max = 2.0)] fx: f64,
    #[control(min = -2.0, max = 2.0)] fy: f64,
    #[control(min = -2.0, max = 2.0)] fz: f64,
    #[param(default = 2.0)] mass: f64,
    #[param(default = 0.02)] jxx: f64,
    #[param(default = 0.03)] jyy: f64,
    #[param(default = 0.04)] jzz: f64,
    #[param(default = 1.0)] quat_stab: f64,
) -> Derivative {
    // Quaternion kinematics q̇ = ½ q ⊗ (0, ω), plus the norm stabilisation.
    let norm_err = quat_stab * (1.0 - (qw * qw + qx * qx + qy * qy + qz * qz));
    let dqw = 0.5 * (-qx * wx - qy * wy - qz * wz) + norm_err * qw;
    let dqx = 0.5 * (qw * wx + qy * wz - qz * wy) + norm_err * qx;
    let dqy = 0.5 * (qw * wy + qz * wx - qx * wz) + norm_err * qy;
    let dqz = 0.5 * (qw * wz + qx * wy - qy * wx) + norm_err * qz;
    // Euler's equations with a diagonal inertia.
    let dwx = (tx - (jzz - jyy) * wy * wz) / jxx;
    let dwy = (ty - (jxx - jzz) * wz * wx) / jyy;
    let dwz = (tz - (jyy - jxx) * wx * wy) / jzz;
    // Body force rotated to the world, R(q) f (R for a unit quaternion).
    let r00 = 1.0 - 2.0 * (qy * qy + qz * qz);
    let r01 = 2.0 * (qx * qy - qw * qz);
    let r02 = 2.0 * (qx * qz + qw * qy);
    let r10 = 2.0 * (qx * qy + qw * qz);
    let r11 = 1.0 - 2.0 * (qx * qx + qz * qz);
    let r12 = 2.0 * (qy * qz - qw * qx);
    let r20 = 2.0 * (qx * qz - qw * qy);
    let r21 = 2.0 * (qy * qz + qw * qx);
    let r22 = 1.0 - 2.0 * (qx * qx + qy * qy);
    Derivative {
        px: vx,
        py: vy,
        pz: vz,
        qw: dqw,
        qx: dqx,
        qy: dqy,
        qz: dqz,
        wx: dwx,
        wy: dwy,
        wz: dwz,
        vx: (r00 * fx + r01 * fy + r02 * fz) / mass,
        vy: (r10 * fx + r11 * fy + r12 * fz) / mass,
        vz: (r20 * fx + r21 * fy + r22 * fz) / mass,
    }
}
