use mpc_macros::mpc_model;

fn helper(v: f64) -> f64 { v }

#[mpc_model(discrete)]
fn calls_a_function(#[state] x: f64, #[control(min = -1.0, max = 1.0)] u: f64) -> Next {
    Next { x: helper(x) + u }
}

#[mpc_model(discrete)]
fn unknown_method(#[state] x: f64, #[control(min = -1.0, max = 1.0)] u: f64) -> Next {
    Next { x: x.floor() + u }
}

#[mpc_model(discrete)]
fn unknown_name(#[state] x: f64, #[control(min = -1.0, max = 1.0)] u: f64) -> Next {
    Next { x: x + gain * u }
}

fn main() {}
