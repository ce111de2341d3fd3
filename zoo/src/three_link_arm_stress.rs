//! STRESS model: a planar three-link arm whose 3×3 mass matrix is inverted symbolically.

use mpc_macros::mpc_model;

/// Planar 3R arm in a vertical plane (gravity along −y), all three joints torque-driven with
/// viscous friction. Written the way a user derives it by hand: Lagrange's equations in the
/// *absolute* link angles `θ1 = q1`, `θ2 = q1 + q2`, `θ3 = q1 + q2 + q3` (Spong, Hutchinson &
/// Vidyasagar, *Robot Modeling and Control* (2006), §7.4–7.5; Winter's chain form), where
///
/// * `D_ii = I_i + m_i c_i² + l_i² Σ_{k>i} m_k`, `D_ij = a_ij cos(θi − θj)` with
///   `a_12 = l1 (m2 c2 + m3 l2)`, `a_13 = l1 m3 c3`, `a_23 = l2 m3 c3`;
/// * `Σ_j D_ij θ̈j + Σ_j a_ij sin(θi − θj) θ̇j² + ∂V/∂θi = Q_i`, with
///   `∂V/∂θ1 = g cos θ1 (m1 c1 + (m2 + m3) l1)`, `∂V/∂θ2 = g cos θ2 (m2 c2 + m3 l2)`,
///   `∂V/∂θ3 = g cos θ3 m3 c3`;
/// * joint torques enter as `Q = (τ1 − τ2, τ2 − τ3, τ3)` (virtual work, `τ_i` after friction).
///
/// The 3×3 symmetric `D` is inverted in closed form (adjugate over determinant) and
/// `q̈ = (θ̈1, θ̈2 − θ̈1, θ̈3 − θ̈2)`. RK4 over this, then exact first and second derivatives of
/// the step, make a very large expression DAG: this model exists to stress the compiler.
///
/// States: joint angles `q1` (rad, link 1 from the horizontal), `q2`, `q3` (rad, relative), and
/// joint rates `dq1`, `dq2`, `dq3` (rad/s). Controls: joint torques `tau1..tau3` (N·m). Links are
/// uniform rods (`c_i = l_i / 2`) with inertias `I_i` given as parameters. RK4, dt = 0.02 s
/// (coarse for violent free motion — a falling, whipping chain loses ~3 % of its energy in 2 s —
/// but ample for controlled motion).
#[mpc_model(dt = 0.02, integrator = rk4)]
pub fn three_link_arm_stress(
    #[state] q1: f64,
    #[state] q2: f64,
    #[state] q3: f64,
    #[state] dq1: f64,
    #[state] dq2: f64,
    #[state] dq3: f64,
    #[control(min = -60.0, max = 60.0)] tau1: f64,
    #[control(min = -30.0, max = 30.0)] tau2: f64,
    #[control(min = -10.0, max = 10.0)] tau3: f64,
    #[param(default = 3.0)] m1: f64,
    #[param(default = 2.0)] m2: f64,
    #[param(default = 1.0)] m3: f64,
    #[param(default = 0.5)] l1: f64,
    #[param(default = 0.4)] l2: f64,
    #[param(default = 0.3)] l3: f64,
    #[param(default = 0.0625)] inertia1: f64,
    #[param(default = 0.02667)] inertia2: f64,
    #[param(default = 0.0075)] inertia3: f64,
    #[param(default = 9.81)] g: f64,
    #[param(default = 0.2)] damping: f64,
) -> Derivative {
    let c1 = 0.5 * l1;
    let c2 = 0.5 * l2;
    let c3 = 0.5 * l3;
    // Absolute angles and rates.
    let th1 = q1;
    let th2 = q1 + q2;
    let th3 = q1 + q2 + q3;
    let w1 = dq1;
    let w2 = dq1 + dq2;
    let w3 = dq1 + dq2 + dq3;
    // Mass matrix in absolute coordinates.
    let a12 = l1 * (m2 * c2 + m3 * l2);
    let a13 = l1 * m3 * c3;
    let a23 = l2 * m3 * c3;
    let d11 = inertia1 + m1 * c1 * c1 + (m2 + m3) * l1 * l1;
    let d22 = inertia2 + m2 * c2 * c2 + m3 * l2 * l2;
    let d33 = inertia3 + m3 * c3 * c3;
    let d12 = a12 * (th1 - th2).cos();
    let d13 = a13 * (th1 - th3).cos();
    let d23 = a23 * (th2 - th3).cos();
    let s12 = (th1 - th2).sin();
    let s13 = (th1 - th3).sin();
    let s23 = (th2 - th3).sin();
    // Centripetal terms Σ_j a_ij sin(θi − θj) θ̇j² (sin(θj − θi) = −sin(θi − θj)).
    let cen1 = a12 * s12 * w2 * w2 + a13 * s13 * w3 * w3;
    let cen2 = -a12 * s12 * w1 * w1 + a23 * s23 * w3 * w3;
    let cen3 = -a13 * s13 * w1 * w1 - a23 * s23 * w2 * w2;
    // Gravity.
    let grav1 = g * th1.cos() * (m1 * c1 + (m2 + m3) * l1);
    let grav2 = g * th2.cos() * (m2 * c2 + m3 * l2);
    let grav3 = g * th3.cos() * m3 * c3;
    // Joint torques after viscous friction, mapped to absolute coordinates.
    let t1 = tau1 - damping * dq1;
    let t2 = tau2 - damping * dq2;
    let t3 = tau3 - damping * dq3;
    let r1 = t1 - t2 - cen1 - grav1;
    let r2 = t2 - t3 - cen2 - grav2;
    let r3 = t3 - cen3 - grav3;
    // Adjugate of the symmetric D, and its determinant.
    let adj11 = d22 * d33 - d23 * d23;
    let adj12 = d13 * d23 - d12 * d33;
    let adj13 = d12 * d23 - d13 * d22;
    let adj22 = d11 * d33 - d13 * d13;
    let adj23 = d12 * d13 - d11 * d23;
    let adj33 = d11 * d22 - d12 * d12;
    let det = d11 * adj11 + d12 * adj12 + d13 * adj13;
    let acc1 = (adj11 * r1 + adj12 * r2 + adj13 * r3) / det;
    let acc2 = (adj12 * r1 + adj22 * r2 + adj23 * r3) / det;
    let acc3 = (adj13 * r1 + adj23 * r2 + adj33 * r3) / det;
    Derivative {
        q1: dq1,
        q2: dq2,
        q3: dq3,
        dq1: acc1,
        dq2: acc2 - acc1,
        dq3: acc3 - acc2,
    }
}
