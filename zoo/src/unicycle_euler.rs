//! A Dubins car: constant forward speed, steered by its turn rate.

use mpc_macros::mpc_model;

/// Dubins car / unicycle at constant speed (L. E. Dubins, "On curves of minimal length with a
/// constraint on average curvature", Amer. J. Math. 79, 1957; LaValle, *Planning Algorithms*,
/// §13.1.2). One control, explicit Euler with a tiny step dt = 0.01 s.
///
/// States: position `x`, `y` (m) and heading `theta` (rad). Control: turn rate `omega` (rad/s).
/// `ẋ = v cos θ`, `ẏ = v sin θ`, `θ̇ = ω`, with the speed `v` a parameter (m/s).
#[mpc_model(dt = 0.01, integrator = euler)]
pub fn unicycle_euler(
    #[state] x: f64,
    #[state] y: f64,
    #[state] theta: f64,
    #[control(min = -1.5, max = 1.5)] omega: f64,
    #[param(default = 2.0)] speed: f64,
) -> Derivative {
    Derivative { x: speed * theta.cos(), y: speed * theta.sin(), theta: omega }
}
