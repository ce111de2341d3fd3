//! Spong's acrobot: a two-link pendulum actuated only at the elbow.

use mpc_macros::mpc_model;

/// Spong's acrobot (M. W. Spong, "The swing up control problem for the Acrobot", IEEE Control
/// Systems Magazine 15(1), 1995, with that paper's parameters: `m1 = m2 = 1 kg`, `l1 = 1 m`,
/// `l2 = 2 m`, `lc1 = 0.5 m`, `lc2 = 1 m`, `I1 = 0.083`, `I2 = 0.33 kg·m²`, `g = 9.8`), plus a
/// little joint friction.
///
/// States: shoulder angle `q1` (rad, 0 = hanging straight down), elbow angle `q2` (rad, relative
/// to link 1), and their rates `dq1`, `dq2` (rad/s). Control: elbow torque `tau` (N·m); the
/// shoulder is passive. Continuous time, RK4, dt = 0.05 s.
///
/// `M(q) q̈ + C(q, q̇) + G(q) + b q̇ = [0, τ]ᵀ` with
/// `d11 = m1 lc1² + m2 (l1² + lc2² + 2 l1 lc2 cos q2) + I1 + I2`,
/// `d12 = m2 (lc2² + l1 lc2 cos q2) + I2`, `d22 = m2 lc2² + I2`,
/// `C = [-m2 l1 lc2 sin q2 (2 q̇1 q̇2 + q̇2²), m2 l1 lc2 sin q2 q̇1²]`,
/// `G = [(m1 lc1 + m2 l1) g sin q1 + m2 lc2 g sin(q1 + q2), m2 lc2 g sin(q1 + q2)]`.
/// The 2×2 mass matrix is inverted explicitly through its determinant.
#[mpc_model(dt = 0.05, integrator = rk4)]
pub fn acrobot(
    #[state] q1: f64,
    #[state] q2: f64,
    #[state] dq1: f64,
    #[state] dq2: f64,
    #[control(min = -8.0, max = 8.0)] tau: f64,
    #[param(default = 1.0)] m1: f64,
    #[param(default = 1.0)] m2: f64,
    #[param(default = 1.0)] l1: f64,
    #[param(default = 0.5)] lc1: f64,
    #[param(default = 1.0)] lc2: f64,
    #[param(default = 0.083)] i1: f64,
    #[param(default = 0.33)] i2: f64,
    #[param(default = 9.8)] g: f64,
    #[param(default = 0.05)] friction: f64,
) -> Derivative {
    let c2 = q2.cos();
    let s2 = q2.sin();
    let d11 = m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * c2) + i1 + i2;
    let d12 = m2 * (lc2 * lc2 + l1 * lc2 * c2) + i2;
    let d22 = m2 * lc2 * lc2 + i2;
    let h = m2 * l1 * lc2 * s2;
    let coriolis1 = -h * (2.0 * dq1 * dq2 + dq2 * dq2);
    let coriolis2 = h * dq1 * dq1;
    let s12 = (q1 + q2).sin();
    let gravity1 = (m1 * lc1 + m2 * l1) * g * q1.sin() + m2 * lc2 * g * s12;
    let gravity2 = m2 * lc2 * g * s12;
    // Right-hand side r = τ_vec − C − G − b q̇.
    let r1 = -coriolis1 - gravity1 - friction * dq1;
    let r2 = tau - coriolis2 - gravity2 - friction * dq2;
    let det = d11 * d22 - d12 * d12;
    Derivative {
        q1: dq1,
        q2: dq2,
        dq1: (d22 * r1 - d12 * r2) / det,
        dq2: (d11 * r2 - d12 * r1) / det,
    }
}
