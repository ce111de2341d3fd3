//! A ball rolling on a beam that a motor tilts: a model written by a user, exported to Python.
//!
//! ```python
//! import ballbeam, mpc_rs
//! solver = mpc_rs.Solver("ball_beam", horizon=30, module=ballbeam)
//! ```

use mpc_macros::mpc_model;

/// Ball and beam (a solid ball of mass `m`, radius `r_ball`, on a beam of inertia `j_beam`
/// driven by a torque), the textbook underactuated system.
///
/// States: ball position along the beam `r` (m), its speed `dr` (m/s), beam angle `th` (rad)
/// and rate `dth` (rad/s). Control: motor torque `tau` (N·m), |tau| ≤ 2.
///
/// `(J_ball / r_ball² + m) r̈ = m r θ̇² − m g sin θ`,
/// `(m r² + J_beam) θ̈ = τ − 2 m r ṙ θ̇ − m g r cos θ − b θ̇`, with `J_ball = 2/5 m r_ball²`.
#[mpc_model(dt = 0.05, integrator = rk4)]
pub fn ball_beam(
    #[state] r: f64,
    #[state] dr: f64,
    #[state] th: f64,
    #[state] dth: f64,
    #[control(min = -2.0, max = 2.0)] tau: f64,
    #[param(default = 0.11)] m: f64,
    #[param(default = 0.015)] r_ball: f64,
    #[param(default = 0.05)] j_beam: f64,
    #[param(default = 9.81)] g: f64,
    #[param(default = 0.02)] damping: f64,
) -> Derivative {
    let j_ball = 0.4 * m * r_ball * r_ball;
    let ddr = (m * r * dth * dth - m * g * th.sin()) / (j_ball / (r_ball * r_ball) + m);
    let ddth = (tau - 2.0 * m * r * dr * dth - m * g * r * th.cos() - damping * dth) / (m * r * r + j_beam);
    Derivative { r: dr, dr: ddr, th: dth, dth: ddth }
}

mpc_pyo3::python_module!(ballbeam, [BallBeam]);
