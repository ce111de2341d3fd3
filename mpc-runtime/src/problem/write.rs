//! Writing of `mpc-solution/1` documents: a solution and its gradients as nested JSON arrays.

use super::{Problem, SOLUTION_FORMAT};
use crate::solver::{Gradients, Solution};
use serde_json::{Map, Value};

/// A flat array as a nested JSON array of the given shape.
fn nest(data: &[f64], shape: &[usize]) -> Value {
    if shape.len() <= 1 {
        return Value::Array(data.iter().map(|&v| num(v)).collect());
    }
    let stride: usize = shape[1..].iter().product();
    Value::Array((0..shape[0]).map(|i| nest(&data[i * stride..(i + 1) * stride], &shape[1..])).collect())
}

fn num(v: f64) -> Value {
    serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null)
}

/// The solution document of `problem` (with the gradients when given) as a JSON value.
/// `param_names` names the entries of [`Gradients::params`] for a named model (in its
/// parameter order); the `linear` model's are `A`, `B`, `f` by construction.
pub fn solution_value(problem: &Problem, sol: &Solution, grads: Option<&Gradients>, param_names: &[&str], backend: &str) -> Value {
    let (b, t, nx, nu) = (problem.batch, problem.horizon, problem.nx, problem.nu);
    let n = nx + nu;
    let mut m = Map::new();
    m.insert("format".into(), Value::String(SOLUTION_FORMAT.into()));
    m.insert("x".into(), nest(&sol.x, &[b, t, nx]));
    m.insert("u".into(), nest(&sol.u, &[b, t, nu]));
    m.insert("cost".into(), nest(&sol.cost, &[b]));
    m.insert("iterations".into(), Value::Array(sol.iterations.iter().map(|&i| Value::from(i as u64)).collect()));
    m.insert("converged".into(), Value::Array(sol.converged.iter().map(|&c| Value::Bool(c)).collect()));
    if sol.kkt_residual.len() == b {
        m.insert("kkt_residual".into(), nest(&sol.kkt_residual, &[b]));
    }
    if sol.stop.len() == b {
        m.insert("stop".into(), Value::Array(sol.stop.iter().map(|s| Value::String(s.name().into())).collect()));
    }
    if let Some(g) = grads {
        m.insert("grad_C".into(), nest(&g.cost_hess, &[b, t, n, n]));
        m.insert("grad_c".into(), nest(&g.cost_lin, &[b, t, n]));
        m.insert("grad_x_init".into(), nest(&g.x_init, &[b, nx]));
        if g.status.len() == b {
            m.insert("grad_status".into(), Value::Array(g.status.iter().map(|s| Value::String(s.name().into())).collect()));
        }
        if !g.params.is_empty() && g.params.len() % b == 0 {
            let np = g.params.len() / b;
            let column = |k: usize| -> Vec<f64> { (0..b).map(|i| g.params[i * np + k]).collect() };
            let mut gp = Map::new();
            if problem.model == "linear" && np == nx * nx + nx * nu + nx {
                let block = |from: usize, len: usize| -> Vec<f64> {
                    (0..b).flat_map(|i| g.params[i * np + from..i * np + from + len].to_vec()).collect()
                };
                gp.insert("A".into(), nest(&block(0, nx * nx), &[b, nx, nx]));
                gp.insert("B".into(), nest(&block(nx * nx, nx * nu), &[b, nx, nu]));
                gp.insert("f".into(), nest(&block(nx * nx + nx * nu, nx), &[b, nx]));
            } else if param_names.len() == np {
                for (k, name) in param_names.iter().enumerate() {
                    gp.insert((*name).into(), nest(&column(k), &[b]));
                }
            }
            if !gp.is_empty() {
                m.insert("grad_params".into(), Value::Object(gp));
            }
        }
    }
    m.insert("backend".into(), Value::String(backend.into()));
    Value::Object(m)
}

/// The solution document as text (compact JSON, shortest round-trip floats).
pub fn solution_json(problem: &Problem, sol: &Solution, grads: Option<&Gradients>, param_names: &[&str], backend: &str) -> String {
    solution_value(problem, sol, grads, param_names, backend).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::fixtures::{base, dims};

    #[test]
    fn solution_round_trips_shapes() {
        let p = Problem::from_value(&base(), &dims).unwrap();
        let sol = Solution {
            x: vec![1.0, 0.0, 0.5, 0.25],
            u: vec![0.1, 0.2],
            cost: vec![3.0],
            iterations: vec![2],
            converged: vec![true],
            ..Default::default()
        };
        let v = solution_value(&p, &sol, None, &[], "cpu");
        assert_eq!(v["x"], serde_json::json!([[[1.0, 0.0], [0.5, 0.25]]]));
        assert_eq!(v["u"], serde_json::json!([[[0.1], [0.2]]]));
        assert_eq!(v["backend"], "cpu");
        assert!(v.get("grad_C").is_none());
    }
}
