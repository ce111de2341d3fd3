//! Two masses joined by a stiff spring, one of them pushed, the other able to hit a wall.

use mpc_macros::mpc_model;

/// Stiff two-mass system: mass 1 is pushed by a force-limited actuator, mass 2 is tied to it by
/// a stiff spring–damper (`k = 1e3 N/m`, natural frequency ≈ 55 rad/s) and can hit a compliant
/// wall on its right (one-sided penalty contact of Hunt & Crossley, "Coefficient of restitution
/// interpreted as damping in vibroimpact", J. Appl. Mech. 42, 1975, linear in the penetration:
/// `k_c = 5e3 N/m`, `α = 1 s/m`). A textbook stiff ODE (Hairer & Wanner, *Solving ODEs II*,
/// §IV.1) with a unilateral contact. Explicit Euler with a small step, dt = 0.002 s: for a mode
/// `s² + 2ζω s + ω² = 0` Euler is stable when `ω dt < 2ζ`, and the spring mode has
/// `ω dt ≈ 0.11 < 2ζ ≈ 0.27`. (Free of contact the system is stable under Euler; in contact,
/// `ω dt ≈ 0.22` and the Hunt–Crossley damping absorbs what Euler adds.)
///
/// States: positions `x1`, `x2` (m) and velocities `v1`, `v2` (m/s). Control: actuator command
/// `force` (N) on mass 1, saturated inside the model at `±f_sat` (`min`/`max`).
///
/// * `s = k (x2 − x1 − rest) + c (v2 − v1)` (spring–damper force on mass 1, opposite on 2);
/// * `δ = max(0, x2 − wall)`, `F_c = max(0, k_c δ (1 + α v2))` (the wall pushes mass 2 back
///   while it penetrates, is zero before contact, and never pulls);
/// * `m1 v̇1 = sat(force) + s`, `m2 v̇2 = −s − F_c`.
#[mpc_model(dt = 0.002, integrator = euler)]
pub fn stiff_mass_spring(
    #[state] x1: f64,
    #[state] v1: f64,
    #[state] x2: f64,
    #[state] v2: f64,
    #[control(min = -60.0, max = 60.0)] force: f64,
    #[param(default = 1.0)] m1: f64,
    #[param(default = 0.5)] m2: f64,
    #[param(default = 1000.0)] k: f64,
    #[param(default = 5.0)] c: f64,
    #[param(default = 0.2)] rest: f64,
    #[param(default = 5000.0)] k_contact: f64,
    #[param(default = 1.0)] alpha_contact: f64,
    #[param(default = 0.3)] wall: f64,
    #[param(default = 60.0)] f_sat: f64,
) -> Derivative {
    let actuator = force.max(-f_sat).min(f_sat);
    let spring = k * (x2 - x1 - rest) + c * (v2 - v1);
    let penetration = (x2 - wall).max(0.0);
    let contact = (k_contact * penetration * (1.0 + alpha_contact * v2)).max(0.0);
    Derivative { x1: v1, v1: (actuator + spring) / m1, x2: v2, v2: (-spring - contact) / m2 }
}
