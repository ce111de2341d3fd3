//! A small surface vessel (USV) in the horizontal plane, discrete time.

use mpc_macros::mpc_model;

/// Surface vessel, 3-DOF reduced to surge and yaw (sway neglected), written directly as a
/// discrete update with forward Euler at `dt` (a parameter, default 0.1 s). After Fossen,
/// *Handbook of Marine Craft Hydrodynamics and Motion Control* (2011), ch. 6–7: Nomoto-style yaw
/// with a rudder whose force grows with the flow speed and stalls at large deflection.
///
/// States: position `x`, `y` (m, north/east-like world frame), heading `psi` (rad), surge speed
/// `v` (m/s, body x), yaw rate `r` (rad/s). Controls: propeller `thrust` (N, reverse allowed but
/// weaker) and `rudder` angle (rad).
///
/// * surge: `m v̇ = thrust − d_lin v − d_quad v |v|` (quadratic hull drag);
/// * yaw: `Iz ṙ = k_rudder · v √(v² + ε) · δ_eff − d_r r − d_r2 r |r|`, where
///   `δ_eff = δ_stall tanh(δ / δ_stall)` saturates the rudder's lift near stall and
///   `v √(v² + ε)` is a smooth `v |v|` (rudder force ∝ flow speed², reversed going astern);
/// * kinematics: `ẋ = v cos ψ`, `ẏ = v sin ψ`, `ψ̇ = r`.
#[mpc_model(discrete)]
pub fn boat(
    #[state] x: f64,
    #[state] y: f64,
    #[state] psi: f64,
    #[state] v: f64,
    #[state] r: f64,
    #[control(min = -60.0, max = 200.0)] thrust: f64,
    #[control(min = -0.6, max = 0.6)] rudder: f64,
    #[param(default = 50.0)] mass: f64,
    #[param(default = 10.0)] iz: f64,
    #[param(default = 5.0)] d_lin: f64,
    #[param(default = 5.0)] d_quad: f64,
    #[param(default = 20.0)] d_r: f64,
    #[param(default = 10.0)] d_r2: f64,
    #[param(default = 8.0)] k_rudder: f64,
    #[param(default = 0.35)] rudder_stall: f64,
    #[param(default = 0.01)] speed_eps: f64,
    #[param(default = 0.1)] dt: f64,
) -> Next {
    let drag = d_lin * v + d_quad * v * v.abs();
    let rudder_eff = rudder_stall * (rudder / rudder_stall).tanh();
    let flow = v * (v * v + speed_eps).sqrt();
    let yaw_moment = k_rudder * flow * rudder_eff - d_r * r - d_r2 * r * r.abs();
    Next {
        x: x + dt * v * psi.cos(),
        y: y + dt * v * psi.sin(),
        psi: psi + dt * r,
        v: v + dt * (thrust - drag) / mass,
        r: r + dt * yaw_moment / iz,
    }
}
