//! A slow, jacketed, exothermic continuous stirred-tank reactor (CSTR).

use mpc_macros::mpc_model;

/// Jacketed CSTR with one first-order exothermic reaction A → B and an Arrhenius rate; the
/// structure of Seborg, Edgar & Mellichamp, *Process Dynamics and Control* (Example 2.5 and the
/// classic "CSTR" MPC benchmark), with a larger vessel (2000 L, 20 min residence time) and a
/// milder reaction (E/R = 5000 K, adiabatic rise ≈ 100 K), so the plant is slow and has no
/// thermal runaway inside the coolant range: RK4 with a large step, dt = 60 s, stays accurate.
///
/// States: concentration of A `ca` (mol/L) and reactor temperature `temp` (K). Control:
/// coolant (jacket) temperature `tc` (K), in absolute units as a plant engineer writes it.
///
/// With `k(T) = k0 exp(−E/(R T))` (1/s):
/// * `ċa = q/V (ca_feed − ca) − k(T) ca`;
/// * `Ṫ = q/V (T_feed − T) + (−ΔH)/(ρ Cp) k(T) ca + UA/(V ρ Cp) (tc − T)`.
///
/// Units: q in L/s, V in L, ρ in g/L, Cp in J/(g·K), ΔH in J/mol, UA in W/K. Steady state at
/// `tc ≈ 326 K`: `ca ≈ 0.50`, `T ≈ 350 K`.
#[mpc_model(dt = 60.0, integrator = rk4)]
pub fn cstr(
    #[state] ca: f64,
    #[state] temp: f64,
    #[control(min = 250.0, max = 400.0)] tc: f64,
    #[param(default = 1.6667)] flow: f64,
    #[param(default = 2000.0)] volume: f64,
    #[param(default = 1344.0)] k0: f64,
    #[param(default = 5000.0)] e_over_r: f64,
    #[param(default = 23900.0)] heat_of_reaction: f64,
    #[param(default = 1000.0)] rho: f64,
    #[param(default = 0.239)] cp: f64,
    #[param(default = 833.3)] ua: f64,
    #[param(default = 1.0)] ca_feed: f64,
    #[param(default = 350.0)] t_feed: f64,
) -> Derivative {
    let rate = k0 * (-e_over_r / temp).exp() * ca;
    let dilution = flow / volume;
    let heat_capacity = volume * rho * cp;
    Derivative {
        ca: dilution * (ca_feed - ca) - rate,
        temp: dilution * (t_feed - temp) + heat_of_reaction / (rho * cp) * rate + ua / heat_capacity * (tc - temp),
    }
}
