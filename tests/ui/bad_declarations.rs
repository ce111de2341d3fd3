use mpc_macros::mpc_model;

#[mpc_model(discrete)]
fn duplicate_binding(#[state] x: f64, #[control(min = -1.0, max = 1.0)] u: f64) -> Next {
    let x = 2.0 * u;
    Next { x: x }
}

#[mpc_model(discrete)]
fn inverted_bounds(#[state] x: f64, #[control(min = 1.0, max = -1.0)] u: f64) -> Next {
    Next { x: x + u }
}

#[mpc_model(discrete)]
fn not_f64(#[state] x: f32, #[control(min = -1.0, max = 1.0)] u: f64) -> Next {
    Next { x: x + u }
}

#[mpc_model(integrator = euler)]
fn no_dt(#[state] x: f64, #[control(min = -1.0, max = 1.0)] u: f64) -> Derivative {
    Derivative { x: u }
}

#[mpc_model(discrete)]
fn unannotated(#[state] x: f64, u: f64) -> Next {
    Next { x: x + u }
}

fn main() {}
