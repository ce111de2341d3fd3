use mpc_macros::mpc_model;

#[mpc_model(discrete)]
fn with_if(#[state] x: f64, #[control(min = -1.0, max = 1.0)] u: f64) -> Next {
    let y = if x > 0.0 { x } else { -x };
    Next { x: y + u }
}

#[mpc_model(discrete)]
fn with_loop(#[state] x: f64, #[control(min = -1.0, max = 1.0)] u: f64) -> Next {
    for _ in 0..3 {}
    Next { x: x + u }
}

fn main() {}
