//! mpc.pytorch's `CartpoleDx()`.

use mpc_macros::mpc_model;

/// Cart-pole with state `(p, v, cos θ, sin θ, ω)` and a force on the cart
/// (mpc.pytorch `CartpoleDx()` defaults). Explicit Euler in the angle (uses the old rate).
#[mpc_model(discrete)]
pub fn cartpole(
    #[state] p: f64,
    #[state] v: f64,
    #[state] cos_theta: f64,
    #[state] sin_theta: f64,
    #[state] omega: f64,
    #[control(min = -100.0, max = 100.0)] force: f64,
    #[param(default = 9.8)] gravity: f64,
    #[param(default = 1.0)] masscart: f64,
    #[param(default = 0.1)] masspole: f64,
    #[param(default = 0.5)] length: f64,
    #[param(default = 0.05)] dt: f64,
    #[param(default = 100.0)] force_mag: f64,
) -> Next {
    let f = force.max(-force_mag).min(force_mag);
    let theta = sin_theta.atan2(cos_theta);
    let total_mass = masscart + masspole;
    let ml = masspole * length;
    let a = (f + ml * omega * omega * sin_theta) / total_mass;
    let alpha = (gravity * sin_theta - cos_theta * a)
        / (length * (4.0 / 3.0 - masspole * cos_theta * cos_theta / total_mass));
    let acc = a - ml * alpha * cos_theta / total_mass;
    let theta_next = theta + dt * omega;
    Next {
        p: p + dt * v,
        v: v + dt * acc,
        cos_theta: theta_next.cos(),
        sin_theta: theta_next.sin(),
        omega: omega + dt * alpha,
    }
}
