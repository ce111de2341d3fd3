//! The CA-AC-MPC racing quadrotor (collective thrust and body rates).

use mpc_macros::mpc_model;

/// Collective-thrust / body-rate quadrotor of CA-AC-MPC (`drone_ts.py`): position, attitude
/// quaternion (body→world, scalar first) and world velocity; thrust in N and body rates in rad/s.
///
/// The attitude is advanced by the exponential map of the body rates and renormalised; both
/// `+1e-8` of the reference are parameters (`omega_norm_eps`, `quat_norm_eps`). The derivative of
/// `|ω|` at `ω = 0` is taken as 0 (the hover warm start stays finite). The velocity update uses
/// the old attitude. Bounds: thrust in [0, 34] N (4 × 8.5), rates ±10, ±10, ±4 rad/s.
#[mpc_model(discrete)]
pub fn quadrotor(
    #[state] px: f64,
    #[state] py: f64,
    #[state] pz: f64,
    #[state] qw: f64,
    #[state] qx: f64,
    #[state] qy: f64,
    #[state] qz: f64,
    #[state] vx: f64,
    #[state] vy: f64,
    #[state] vz: f64,
    #[control(min = 0.0, max = 34.0)] thrust: f64,
    #[control(min = -10.0, max = 10.0)] wx: f64,
    #[control(min = -10.0, max = 10.0)] wy: f64,
    #[control(min = -4.0, max = 4.0)] wz: f64,
    #[param(default = 0.752)] mass: f64,
    #[param(default = 9.8066)] gravity: f64,
    #[param(default = 0.05)] dt: f64,
    #[param(default = 1e-8)] quat_norm_eps: f64,
    #[param(default = 1e-8)] omega_norm_eps: f64,
) -> Next {
    // Exponential map of the body rates over one step.
    let n = (wx * wx + wy * wy + wz * wz).sqrt() + omega_norm_eps;
    let h = 0.5 * dt * n;
    let sin_h = h.sin();
    let ew = h.cos();
    let ex = wx / n * sin_h;
    let ey = wy / n * sin_h;
    let ez = wz / n * sin_h;
    // q ⊗ e (Hamilton product, scalar first), then renormalise.
    let rw = qw * ew - qx * ex - qy * ey - qz * ez;
    let rx = qw * ex + qx * ew + qy * ez - qz * ey;
    let ry = qw * ey + qy * ew + qz * ex - qx * ez;
    let rz = qw * ez + qz * ew + qx * ey - qy * ex;
    let norm = (rw * rw + rx * rx + ry * ry + rz * rz).sqrt() + quat_norm_eps;
    // Thrust along body z rotated to the world with the old attitude (homogeneous form).
    let tx = thrust * (2.0 * (qw * qy + qx * qz));
    let ty = thrust * (2.0 * (qy * qz - qw * qx));
    let tz = thrust * (qw * qw - qx * qx - qy * qy + qz * qz);
    Next {
        px: px + dt * vx,
        py: py + dt * vy,
        pz: pz + dt * vz,
        qw: rw / norm,
        qx: rx / norm,
        qy: ry / norm,
        qz: rz / norm,
        vx: vx + dt * (tx / mass),
        vy: vy + dt * (ty / mass),
        vz: vz + dt * (tz / mass - gravity),
    }
}
