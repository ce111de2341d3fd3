//! A robot the bundled set lacks: the kinematic bicycle (shared by the example and the tests).

use mpc_macros::mpc_model;

/// Kinematic bicycle, continuous time, integrated with RK4.
///
/// States: position `(px, py)` of the rear axle, heading `yaw`, speed `v`; controls:
/// acceleration and front steering angle.
#[mpc_model(dt = 0.05, integrator = rk4)]
pub fn bicycle(
    #[state] px: f64,
    #[state] py: f64,
    #[state] yaw: f64,
    #[state] v: f64,
    #[control(min = -3.0, max = 3.0)] accel: f64,
    #[control(min = -0.5, max = 0.5)] steer: f64,
    #[param(default = 2.5)] wheelbase: f64,
) -> Derivative {
    let turn = v / wheelbase;
    Derivative { px: v * yaw.cos(), py: v * yaw.sin(), yaw: turn * steer.tan(), v: accel }
}
