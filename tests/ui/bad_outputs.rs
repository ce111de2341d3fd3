use mpc_macros::mpc_model;

#[mpc_model(dt = 0.1, integrator = rk4)]
fn state_left_out(#[state] p: f64, #[state] v: f64, #[control(min = -1.0, max = 1.0)] a: f64) -> Derivative {
    Derivative { p: v }
}

#[mpc_model(discrete)]
fn wrong_kind(#[state] p: f64, #[control(min = -1.0, max = 1.0)] a: f64) -> Next {
    Derivative { p: a }
}

#[mpc_model(dt = 0.1)]
fn not_a_state(#[state] p: f64, #[control(min = -1.0, max = 1.0)] a: f64) -> Derivative {
    Derivative { p: a, q: a }
}

fn main() {}
