//! A planar two-link robot arm in a vertical plane, both joints actuated.

use mpc_macros::mpc_model;

/// Planar 2R arm moving in a vertical plane (gravity along −y), uniform slender links, both
/// joints driven by torque motors with viscous friction. Equations of Lynch & Park, *Modern
/// Robotics* (2017), §8.1 (`M(q) q̈ + c(q, q̇) + g(q) = τ`), with the links' centres of mass at
/// mid-length and inertias `m l² / 12`; the 2×2 mass matrix is inverted through its determinant.
///
/// States: shoulder angle `q1` (rad, from the horizontal x axis), elbow angle `q2` (rad, relative
/// to link 1), joint rates `dq1`, `dq2` (rad/s). Controls: joint torques `tau1`, `tau2` (N·m).
///
/// * `M11 = I1 + I2 + m1 c1² + m2 (l1² + c2² + 2 l1 c2 cos q2)`, `M12 = I2 + m2 (c2² + l1 c2 cos q2)`,
///   `M22 = I2 + m2 c2²`;
/// * `c = [−h (2 q̇1 q̇2 + q̇2²), h q̇1²]` with `h = m2 l1 c2 sin q2`;
/// * `g = [(m1 c1 + m2 l1) g cos q1 + m2 c2 g cos(q1 + q2), m2 c2 g cos(q1 + q2)]`.
///
/// Continuous time, RK4, dt = 0.02 s (the light forearm swings fast: at 0.05 s RK4 loses ~7 % of
/// the energy in 2 s of free motion, at 0.02 s about 0.3 %).
#[mpc_model(dt = 0.02, integrator = rk4)]
pub fn two_link_arm(
    #[state] q1: f64,
    #[state] q2: f64,
    #[state] dq1: f64,
    #[state] dq2: f64,
    #[control(min = -30.0, max = 30.0)] tau1: f64,
    #[control(min = -15.0, max = 15.0)] tau2: f64,
    #[param(default = 2.0)] m1: f64,
    #[param(default = 1.5)] m2: f64,
    #[param(default = 0.5)] l1: f64,
    #[param(default = 0.4)] l2: f64,
    #[param(default = 9.81)] g: f64,
    #[param(default = 0.1)] damping: f64,
) -> Derivative {
    let c1 = 0.5 * l1;
    let c2 = 0.5 * l2;
    let inertia1 = m1 * l1 * l1 / 12.0;
    let inertia2 = m2 * l2 * l2 / 12.0;
    let cos2 = q2.cos();
    let m11 = inertia1 + inertia2 + m1 * c1 * c1 + m2 * (l1 * l1 + c2 * c2 + 2.0 * l1 * c2 * cos2);
    let m12 = inertia2 + m2 * (c2 * c2 + l1 * c2 * cos2);
    let m22 = inertia2 + m2 * c2 * c2;
    let h = m2 * l1 * c2 * q2.sin();
    let cor1 = -h * (2.0 * dq1 * dq2 + dq2 * dq2);
    let cor2 = h * dq1 * dq1;
    let cos12 = (q1 + q2).cos();
    let grav1 = (m1 * c1 + m2 * l1) * g * q1.cos() + m2 * c2 * g * cos12;
    let grav2 = m2 * c2 * g * cos12;
    let r1 = tau1 - cor1 - grav1 - damping * dq1;
    let r2 = tau2 - cor2 - grav2 - damping * dq2;
    let det = m11 * m22 - m12 * m12;
    Derivative {
        q1: dq1,
        q2: dq2,
        dq1: (m22 * r1 - m12 * r2) / det,
        dq2: (m11 * r2 - m12 * r1) / det,
    }
}
