//! mpc.pytorch's `PendulumDx(simple=True)`.

use mpc_macros::mpc_model;

/// Torque-driven pendulum with state `(cos θ, sin θ, ω)` (mpc.pytorch `PendulumDx(simple=True)`).
///
/// The control is clamped to `±max_torque` inside the model, as in mpc.pytorch, but with the
/// derivative of the clamp taken as 1 on the bound (see `models.md`): the solver's box keeps the
/// control feasible, so the clamp never changes a value there. The angle update is
/// semi-implicit (it uses the new rate), and gravity uses the state entry `sin θ` as it is.
#[mpc_model(discrete)]
pub fn pendulum(
    #[state] cos_theta: f64,
    #[state] sin_theta: f64,
    #[state] omega: f64,
    #[control(min = -2.0, max = 2.0)] torque: f64,
    #[param(default = 10.0)] g: f64,
    #[param(default = 1.0)] m: f64,
    #[param(default = 1.0)] l: f64,
    #[param(default = 0.05)] dt: f64,
    #[param(default = 2.0)] max_torque: f64,
) -> Next {
    let u = torque.max(-max_torque).min(max_torque);
    let theta = sin_theta.atan2(cos_theta);
    let omega_next = omega + dt * (3.0 * g / (2.0 * l) * sin_theta + 3.0 * u / (m * l * l));
    let theta_next = theta + dt * omega_next;
    Next { cos_theta: theta_next.cos(), sin_theta: theta_next.sin(), omega: omega_next }
}
