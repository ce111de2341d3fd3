//! The planar (2-D) quadrotor: two rotors in the x–z plane.

use mpc_macros::mpc_model;

/// Planar quadrotor (birotor in the vertical plane), as in Tedrake, *Underactuated Robotics*,
/// ch. 3 ("planar quadrotor"), with a small linear air drag added.
///
/// States: position `x` (m, horizontal), `z` (m, up), pitch `theta` (rad, positive tilts the
/// thrust towards −x), velocities `vx`, `vz` (m/s) and pitch rate `omega` (rad/s). Controls:
/// rotor thrusts `f1` (at −arm) and `f2` (at +arm), in N, non-negative.
///
/// `m ẍ = −(f1 + f2) sin θ − c v_x`, `m z̈ = (f1 + f2) cos θ − m g − c v_z`,
/// `I θ̈ = arm (f2 − f1)`. Continuous time, RK4, dt = 0.05 s. Hover: `f1 = f2 = m g / 2 ≈ 2.45 N`.
#[mpc_model(dt = 0.05, integrator = rk4)]
pub fn planar_quadrotor(
    #[state] x: f64,
    #[state] z: f64,
    #[state] theta: f64,
    #[state] vx: f64,
    #[state] vz: f64,
    #[state] omega: f64,
    #[control(min = 0.0, max = 6.0)] f1: f64,
    #[control(min = 0.0, max = 6.0)] f2: f64,
    #[param(default = 0.5)] mass: f64,
    #[param(default = 0.0025)] inertia: f64,
    #[param(default = 0.15)] arm: f64,
    #[param(default = 9.81)] g: f64,
    #[param(default = 0.05)] drag: f64,
) -> Derivative {
    let total = f1 + f2;
    Derivative {
        x: vx,
        z: vz,
        theta: omega,
        vx: (-total * theta.sin() - drag * vx) / mass,
        vz: (total * theta.cos() - drag * vz) / mass - g,
        omega: arm * (f2 - f1) / inertia,
    }
}
