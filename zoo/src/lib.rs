//! A zoo of robots written the way users write them, with `#[mpc_model]`.
//!
//! None of these is bundled (`mpc-models` has the pendulum, cart-pole and racing quadrotor,
//! `examples/` the bicycle): they exist to prove the compiler and the solver on models nobody
//! tuned them for. Between them they cover discrete maps and both integrators, one to nineteen
//! z-dimensions, tiny (0.002 s) and large (60 s) steps, stiff springs and one-sided contact
//! (`min`/`max`), saturations (`tanh`), `sqrt`, `abs`, `exp` (Arrhenius), quaternions, and
//! mass matrices inverted in closed form — the 3×3 one through RK4 on purpose, as a stress test
//! of the size of the generated code.
//!
//! Every model type implements [`ZooCase`], a reasonable test scenario (three starts, a goal,
//! diagonal weights, a horizon, and tighter control bounds that some controls hit at the
//! optimum). [`dispatch`] and [`for_each`] pick model types by name, monomorphised, like
//! `mpc_models::dispatch`.

mod acrobot;
mod boat;
mod cstr;
mod planar_quadrotor;
mod rigid_body_quat;
mod stiff_mass_spring;
mod three_link_arm_stress;
mod two_link_arm;
mod unicycle_euler;

pub use acrobot::Acrobot;
pub use boat::Boat;
pub use cstr::Cstr;
pub use planar_quadrotor::PlanarQuadrotor;
pub use rigid_body_quat::RigidBodyQuat;
pub use stiff_mass_spring::StiffMassSpring;
pub use three_link_arm_stress::ThreeLinkArmStress;
pub use two_link_arm::TwoLinkArm;
pub use unicycle_euler::UnicycleEuler;

use mpc_runtime::Model;
use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};

/// Names of the zoo's models (the `snake_case` name of each model function), in [`dispatch`]
/// order.
pub const ZOO: &[&str] = &[
    "acrobot",
    "boat",
    "unicycle_euler",
    "planar_quadrotor",
    "rigid_body_quat",
    "stiff_mass_spring",
    "cstr",
    "two_link_arm",
    "three_link_arm_stress",
];

/// A regulation/tracking task for one model: cost
/// `Σ_t ½ (x_t − x_goal)ᵀ diag(q) (x_t − x_goal) + ½ u_tᵀ diag(r) u_t` over `horizon` steps from
/// each of `x_starts`. The model's own control bounds are the loose box; `u_lower_tight` /
/// `u_upper_tight` are a tighter box, inside the model's, that some controls hit at the solution.
#[derive(Clone, Debug, PartialEq)]
pub struct ZooScenario {
    /// Three initial states (nx each).
    pub x_starts: Vec<Vec<f64>>,
    /// The state to reach and hold (nx).
    pub x_goal: Vec<f64>,
    /// Diagonal state weights (nx).
    pub q_diag: Vec<f64>,
    /// Diagonal control weights (nu), on the controls themselves (not a deviation).
    pub r_diag: Vec<f64>,
    /// Number of control steps.
    pub horizon: usize,
    /// Tight lower control bounds (nu), at or above the model's.
    pub u_lower_tight: Vec<f64>,
    /// Tight upper control bounds (nu), at or below the model's.
    pub u_upper_tight: Vec<f64>,
}

impl ZooScenario {
    /// The scenario's cost in the exchange format's layout for one problem: `C_t = diag(q, r)`
    /// (T×n×n) and `c_t = [−q ⊙ x_goal; 0]` (T×n), the same for every stage.
    pub fn cost(&self) -> (Vec<f64>, Vec<f64>) {
        let (nx, nu, t) = (self.q_diag.len(), self.r_diag.len(), self.horizon);
        let n = nx + nu;
        let mut cm = vec![0.0; t * n * n];
        let mut cv = vec![0.0; t * n];
        for s in 0..t {
            for i in 0..n {
                let w = if i < nx { self.q_diag[i] } else { self.r_diag[i - nx] };
                cm[s * n * n + i * n + i] = w;
                if i < nx {
                    cv[s * n + i] = -w * self.x_goal[i];
                }
            }
        }
        (cm, cv)
    }
}

/// Calls the macro `$m` with `name => Type` for every zoo model (in [`ZOO`] order), e.g. to
/// write one test per model: `mpc_zoo::with_zoo_types!(my_tests);`.
#[macro_export]
macro_rules! with_zoo_types {
    ($m:ident) => {
        $m! {
            acrobot => $crate::Acrobot,
            boat => $crate::Boat,
            unicycle_euler => $crate::UnicycleEuler,
            planar_quadrotor => $crate::PlanarQuadrotor,
            rigid_body_quat => $crate::RigidBodyQuat,
            stiff_mass_spring => $crate::StiffMassSpring,
            cstr => $crate::Cstr,
            two_link_arm => $crate::TwoLinkArm,
            three_link_arm_stress => $crate::ThreeLinkArmStress,
        }
    };
}

/// A zoo model's test scenario.
pub trait ZooCase {
    /// The scenario (see [`ZooScenario`]).
    fn scenario() -> ZooScenario;
}

/// Something to do with a zoo model whose type is only known by name at run time.
pub trait ZooVisitor {
    /// What the visit returns.
    type Output;
    /// Called with the model type chosen by name.
    fn visit<M: Model + ZooCase>(self) -> Self::Output;
}

/// Run `visitor` with the zoo model called `name`; `None` for an unknown name.
pub fn dispatch<V: ZooVisitor>(name: &str, visitor: V) -> Option<V::Output> {
    match name {
        "acrobot" => Some(visitor.visit::<Acrobot>()),
        "boat" => Some(visitor.visit::<Boat>()),
        "unicycle_euler" => Some(visitor.visit::<UnicycleEuler>()),
        "planar_quadrotor" => Some(visitor.visit::<PlanarQuadrotor>()),
        "rigid_body_quat" => Some(visitor.visit::<RigidBodyQuat>()),
        "stiff_mass_spring" => Some(visitor.visit::<StiffMassSpring>()),
        "cstr" => Some(visitor.visit::<Cstr>()),
        "two_link_arm" => Some(visitor.visit::<TwoLinkArm>()),
        "three_link_arm_stress" => Some(visitor.visit::<ThreeLinkArmStress>()),
        _ => None,
    }
}

/// Run a clone of `visitor` with every zoo model, in [`ZOO`] order.
pub fn for_each<V: ZooVisitor + Clone>(visitor: V) -> Vec<(&'static str, V::Output)> {
    ZOO.iter().map(|&name| (name, dispatch(name, visitor.clone()).expect("every ZOO name dispatches"))).collect()
}

/// The generated Rust bodies of a zoo model's `Model` methods (to measure the compiler's output).
pub fn generated_rust(name: &str) -> Option<&'static str> {
    match name {
        "acrobot" => Some(Acrobot::GENERATED_RUST),
        "boat" => Some(Boat::GENERATED_RUST),
        "unicycle_euler" => Some(UnicycleEuler::GENERATED_RUST),
        "planar_quadrotor" => Some(PlanarQuadrotor::GENERATED_RUST),
        "rigid_body_quat" => Some(RigidBodyQuat::GENERATED_RUST),
        "stiff_mass_spring" => Some(StiffMassSpring::GENERATED_RUST),
        "cstr" => Some(Cstr::GENERATED_RUST),
        "two_link_arm" => Some(TwoLinkArm::GENERATED_RUST),
        "three_link_arm_stress" => Some(ThreeLinkArmStress::GENERATED_RUST),
        _ => None,
    }
}

/// The generated CUDA device source of a zoo model.
pub fn cuda_source(name: &str) -> Option<&'static str> {
    struct Cuda;
    impl ZooVisitor for Cuda {
        type Output = &'static str;
        fn visit<M: Model + ZooCase>(self) -> &'static str {
            M::CUDA_SOURCE
        }
    }
    dispatch(name, Cuda)
}

// ---- scenarios ----

impl ZooCase for Acrobot {
    /// Swing-up towards the upright `q1 = π, q2 = 0` from near the bottom in 1.5 s: too short to
    /// get there, so the optimum pumps energy in with the elbow (weights favour `q1`, the elbow
    /// may flail), on its bounds most of the time with the ±4 N·m box.
    fn scenario() -> ZooScenario {
        ZooScenario {
            x_starts: vec![vec![0.0, 0.0, 0.0, 0.0], vec![0.3, -0.2, 0.0, 0.0], vec![-0.2, 0.4, 0.5, -0.5]],
            x_goal: vec![PI, 0.0, 0.0, 0.0],
            q_diag: vec![10.0, 1.0, 0.1, 0.1],
            r_diag: vec![0.01],
            horizon: 30,
            u_lower_tight: vec![-4.0],
            u_upper_tight: vec![4.0],
        }
    }
}

impl ZooCase for Boat {
    /// Head for a waypoint 20–25 m away and stop there, over 3 s (it cannot get there: the
    /// cost stays large, of order 1e4); full thrust and the rudder limit are hit.
    fn scenario() -> ZooScenario {
        ZooScenario {
            x_starts: vec![vec![0.0, 0.0, 0.0, 0.0, 0.0], vec![0.0, 0.0, 0.5, 1.0, 0.0], vec![-5.0, 5.0, -0.3, 2.0, 0.1]],
            x_goal: vec![20.0, 10.0, 0.0, 0.0, 0.0],
            q_diag: vec![1.0, 1.0, 0.1, 0.1, 0.1],
            r_diag: vec![1e-4, 1.0],
            horizon: 30,
            u_lower_tight: vec![-20.0, -0.3],
            u_upper_tight: vec![80.0, 0.3],
        }
    }
}

impl ZooCase for UnicycleEuler {
    /// Turn onto a line 0.2 m to the left at heading 0.6 rad within 0.3 s (0.6 m of travel):
    /// the turn rate saturates.
    fn scenario() -> ZooScenario {
        ZooScenario {
            x_starts: vec![vec![0.0, 0.0, 0.0], vec![0.0, 0.1, 0.3], vec![0.0, -0.1, -0.2]],
            x_goal: vec![0.6, 0.2, 0.6],
            q_diag: vec![1.0, 100.0, 10.0],
            r_diag: vec![0.01],
            horizon: 30,
            u_lower_tight: vec![-1.0],
            u_upper_tight: vec![1.0],
        }
    }
}

impl ZooCase for PlanarQuadrotor {
    /// Fly 1 m sideways and 0.5 m up in 1.5 s and hover; the tilt manoeuvre saturates a rotor.
    fn scenario() -> ZooScenario {
        ZooScenario {
            x_starts: vec![
                vec![0.0; 6],
                vec![-0.5, 0.3, 0.2, 0.5, 0.0, 0.0],
                vec![0.3, -0.2, -0.3, 0.0, 0.5, 1.0],
            ],
            x_goal: vec![1.0, 0.5, 0.0, 0.0, 0.0, 0.0],
            q_diag: vec![10.0, 10.0, 1.0, 1.0, 1.0, 0.1],
            r_diag: vec![0.1, 0.1],
            horizon: 30,
            u_lower_tight: vec![0.5, 0.5],
            u_upper_tight: vec![4.0, 4.0],
        }
    }
}

impl ZooCase for RigidBodyQuat {
    /// Translate by (0.5, −0.3, 0.2) m and yaw by 90° in 1.5 s, then be at rest; the yaw torque
    /// (±0.1 N·m on 0.04 kg·m²) is too weak to finish, so it saturates.
    fn scenario() -> ZooScenario {
        let h = FRAC_PI_4; // half of the 90° yaw
        // Start 2: rolled 0.2 rad about x, spinning; start 3: tilted 0.4 rad about the oblique
        // axis (1, 0.5, −0.2)/n, tumbling and drifting.
        let (s, c) = 0.2f64.sin_cos();
        let n = (1.0f64 + 0.25 + 0.04).sqrt();
        ZooScenario {
            x_starts: vec![
                vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                vec![0.1, 0.0, -0.1, 0.1f64.cos(), 0.1f64.sin(), 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.1, 0.0],
                vec![-0.2, 0.1, 0.0, c, s / n, 0.5 * s / n, -0.2 * s / n, 0.2, -0.3, 0.4, 0.1, -0.1, 0.05],
            ],
            x_goal: vec![0.5, -0.3, 0.2, h.cos(), 0.0, 0.0, h.sin(), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            q_diag: vec![10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            r_diag: vec![1.0, 1.0, 1.0, 0.1, 0.1, 0.1],
            horizon: 30,
            u_lower_tight: vec![-0.1, -0.1, -0.1, -1.0, -1.0, -1.0],
            u_upper_tight: vec![0.1, 0.1, 0.1, 1.0, 1.0, 1.0],
        }
    }
}

impl ZooCase for StiffMassSpring {
    /// Damp the stiff spring's oscillation and park both masses (0.06 s, 30 Euler steps): a
    /// stretched spring, mass 2 flying into the wall, and a mixed start.
    fn scenario() -> ZooScenario {
        ZooScenario {
            x_starts: vec![vec![0.0, 0.0, 0.25, 0.0], vec![0.0, 0.0, 0.2, 2.0], vec![0.05, -1.0, 0.22, 1.0]],
            x_goal: vec![0.0, 0.0, 0.2, 0.0],
            q_diag: vec![1e3, 1.0, 1e3, 1.0],
            r_diag: vec![1e-4],
            horizon: 30,
            u_lower_tight: vec![-20.0],
            u_upper_tight: vec![20.0],
        }
    }
}

impl ZooCase for Cstr {
    /// Move the reactor to `ca = 0.5 mol/L`, `T = 350 K` (steady with `tc ≈ 326 K`) over 30 min
    /// (30 steps of 60 s) from a cold start, a warm start and an overheated start; the cold
    /// starts want more coolant heat than `tc ≤ 340 K` gives.
    fn scenario() -> ZooScenario {
        ZooScenario {
            x_starts: vec![vec![0.9, 300.0], vec![0.8, 320.0], vec![0.3, 370.0]],
            x_goal: vec![0.5, 350.0],
            q_diag: vec![1e3, 0.1],
            r_diag: vec![1e-5],
            horizon: 30,
            u_lower_tight: vec![280.0],
            u_upper_tight: vec![340.0],
        }
    }
}

impl ZooCase for TwoLinkArm {
    /// Lift the arm from hanging, horizontal and a moving start to `q = (1.0, 0.5)` rad in 0.6 s
    /// and hold it against gravity; the tight torque box is hit while accelerating.
    fn scenario() -> ZooScenario {
        ZooScenario {
            x_starts: vec![vec![-FRAC_PI_2, 0.0, 0.0, 0.0], vec![0.0, 0.0, 0.0, 0.0], vec![-1.0, 0.5, 1.0, -1.0]],
            x_goal: vec![1.0, 0.5, 0.0, 0.0],
            q_diag: vec![10.0, 10.0, 0.1, 0.1],
            r_diag: vec![1e-3, 1e-3],
            horizon: 30,
            u_lower_tight: vec![-20.0, -8.0],
            u_upper_tight: vec![20.0, 8.0],
        }
    }
}

impl ZooCase for ThreeLinkArmStress {
    /// Raise the 3-link arm to `q = (0.5, 0.5, 0.3)` rad in 0.6 s (30 steps of 0.02 s) and hold
    /// it; the tight torque box is hit.
    fn scenario() -> ZooScenario {
        ZooScenario {
            x_starts: vec![
                vec![-FRAC_PI_2, 0.0, 0.0, 0.0, 0.0, 0.0],
                vec![0.0; 6],
                vec![-0.5, 0.5, -0.5, 0.5, 0.0, -0.5],
            ],
            x_goal: vec![0.5, 0.5, 0.3, 0.0, 0.0, 0.0],
            q_diag: vec![10.0, 10.0, 10.0, 0.1, 0.1, 0.1],
            r_diag: vec![1e-3, 1e-3, 1e-3],
            horizon: 30,
            u_lower_tight: vec![-40.0, -15.0, -5.0],
            u_upper_tight: vec![40.0, 15.0, 5.0],
        }
    }
}
