//! Property-based tests of the exchange format and the solver (issue 17), with random shapes,
//! finite and extreme values and bounds:
//!
//! * `mpc solve` on random documents (some malformed) never panics: it exits 0 with a solution
//!   or 2 with a message and no file; in every solution a problem whose numbers are not all
//!   finite says so (`stop`: `non-finite-*`, not converged), and every gradient is finite.
//! * The CPU solver on random batches (pendulum, cart-pole; iLQR and DDP; with and without a
//!   KKT tolerance; with and without bounds): the same invariant, per problem.
//!
//! Case counts are set for CI (a few seconds each); `PROPTEST_CASES` raises them.

mod common;

use common::{read_json, solve_file};

use mpc_models::{Cartpole, Pendulum};
use mpc_runtime::{Batch, Bound, Dynamics, Method, Solver, SolverOptions};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A number: ordinary most of the time, else one of the extremes a user's data can hold.
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -3.0..3.0f64,
        1 => prop::sample::select(vec![1e308, -1e308, 1e200, -1e200, 1e154, 1e-300, 0.0, 5e-324]),
    ]
}

fn weight() -> impl Strategy<Value = f64> {
    prop_oneof![8 => 0.01..10.0f64, 1 => prop::sample::select(vec![0.0, 1e308, 1e200, 1e-300])]
}

#[derive(Clone, Debug)]
struct Doc {
    value: Value,
    /// Whether the generator broke the document on purpose (a wrong shape).
    broken: bool,
}

fn nested(v: &[f64], dims: &[usize]) -> Value {
    if dims.len() <= 1 {
        return json!(v);
    }
    let stride: usize = dims[1..].iter().product();
    Value::Array(v.chunks(stride.max(1)).map(|c| nested(c, &dims[1..])).collect())
}

prop_compose! {
    fn document()(
        model in prop::sample::select(vec!["linear", "pendulum", "cartpole"]),
        b in 1usize..=3,
        t in 1usize..=6,
        seed_vals in prop::collection::vec(number(), 400),
        weights in prop::collection::vec(weight(), 200),
        bounds in 0u8..4,
        lo_hi in (-3.0..0.5f64, -0.5..3.0f64),
        method in prop::sample::select(vec!["ilqr", "ddp"]),
        tol in prop::option::of(prop::sample::select(vec![1e-8, 1e-4])),
        iters in 1usize..25,
        grads in any::<bool>(),
        break_key in prop::option::weighted(0.15, prop::sample::select(vec!["x_init", "C", "c", "u_init", "grad_u"])),
    ) -> Doc {
        let (nx, nu) = match model { "pendulum" => (3, 1), "cartpole" => (5, 1), _ => (2, 1) };
        let n = nx + nu;
        let mut k = 0usize;
        let mut next = |m: usize| -> Vec<f64> { (0..m).map(|_| { k += 1; seed_vals[k % seed_vals.len()] }).collect() };
        let mut c_hess = vec![0.0; b * t * n * n];
        for s in 0..b * t {
            for i in 0..n {
                c_hess[s * n * n + i * n + i] = weights[(s * n + i) % weights.len()];
            }
        }
        let mut doc = json!({
            "format": "mpc-problem/1",
            "model": model,
            "horizon": t,
            "x_init": nested(&next(b * nx), &[b, nx]),
            "C": nested(&c_hess, &[b, t, n, n]),
            "c": nested(&next(b * t * n), &[b, t, n]),
            "u_init": nested(&next(b * t * nu), &[b, t, nu]),
            "solver": { "max_iters": iters, "method": method },
        });
        if model == "linear" {
            let a = next(nx * nx);
            let bm = next(nx * nu);
            doc["params"] = json!({ "A": nested(&a, &[nx, nx]), "B": nested(&bm, &[nx, nu]), "f": next(nx) });
        }
        if let Some(tol) = tol {
            doc["solver"]["tol"] = json!(tol);
        }
        match bounds {
            1 => { doc["u_lower"] = json!(vec![lo_hi.0; nu]); doc["u_upper"] = json!(vec![lo_hi.1; nu]); }
            2 => {
                doc["u_lower"] = nested(&vec![lo_hi.0; b * t * nu], &[b, t, nu]);
                doc["u_upper"] = nested(&vec![lo_hi.1; b * t * nu], &[b, t, nu]);
            }
            3 => { doc["u_lower"] = json!(vec![-1e308; nu]); doc["u_upper"] = json!(vec![1e308; nu]); }
            _ => {}
        }
        if grads {
            doc["grad_x"] = nested(&next(b * t * nx), &[b, t, nx]);
            doc["grad_u"] = nested(&next(b * t * nu), &[b, t, nu]);
        }
        let mut broken = false;
        if let Some(key) = break_key && doc.get(key).is_some() {
            // Drop the last problem's entry: a batch-size mismatch the parser must name.
            if let Some(arr) = doc[key].as_array_mut() && arr.len() > 1 {
                arr.pop();
                broken = true;
            } else if let Some(arr) = doc[key].as_array_mut() {
                arr.push(Value::from(1.0));
                broken = true;
            }
        }
        Doc { value: doc, broken }
    }
}

fn finite(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
        Value::Array(a) => a.iter().all(finite),
        _ => false,
    }
}

/// The invariant of a solution document: per problem, all numbers finite, or a non-finite stop
/// and not converged; gradients always finite.
fn check_solution(sol: &Value) -> Result<(), String> {
    let b = sol["cost"].as_array().ok_or("no cost")?.len();
    for i in 0..b {
        let stop = sol["stop"][i].as_str().ok_or("no stop")?;
        let all_finite = ["x", "u", "cost", "kkt_residual"].iter().all(|k| finite(&sol[*k][i]));
        if stop.starts_with("non-finite") {
            if sol["converged"][i] != Value::Bool(false) {
                return Err(format!("problem {i}: {stop} but converged"));
            }
        } else if !all_finite {
            return Err(format!("problem {i}: stop {stop} but a non-finite number in the solution: {}", sol));
        }
    }
    for k in ["grad_C", "grad_c", "grad_x_init"] {
        if sol.get(k).is_some() && !finite(&sol[k]) {
            return Err(format!("{k} holds a non-finite number"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mpc_solve_never_panics_and_flags_every_non_finite_result(doc in document()) {
        let dir = mpc_runtime::private_fs::private_temp_dir("mpc-prop-").unwrap();
        let (p, s) = (dir.path().join("p.json"), dir.path().join("s.json"));
        std::fs::write(&p, doc.value.to_string()).unwrap();
        let out = solve_file(&p, &s);
        let stderr = String::from_utf8_lossy(&out.stderr);
        prop_assert!(!stderr.contains("panicked"), "panic: {stderr}");
        match out.status.code() {
            Some(0) => {
                prop_assert!(!doc.broken, "a broken document was accepted: {}", doc.value);
                let sol: Value = read_json(&s);
                if let Err(e) = check_solution(&sol) {
                    prop_assert!(false, "{e}\nproblem: {}", doc.value);
                }
            }
            Some(2) => {
                prop_assert!(!s.exists(), "exit 2 but a solution was written");
                prop_assert!(stderr.starts_with("mpc solve: "), "no message: {stderr}");
            }
            other => prop_assert!(false, "exit {other:?}: {stderr}"),
        }
    }
}

/// One random batch for the solver (any model `D`): per-problem invariants as above.
fn solver_case<D: Dynamics + Clone>(model: D, t: usize, vals: &[f64], ws: &[f64], opts: SolverOptions, bounded: bool) -> Result<(), String> {
    let (nx, nu) = (model.nx(), model.nu());
    let n = nx + nu;
    let b = 3;
    let pick = |k: usize| vals[k % vals.len()];
    let x0: Vec<f64> = (0..b * nx).map(pick).collect();
    let mut cm = vec![0.0; b * t * n * n];
    for s in 0..b * t {
        for i in 0..n {
            cm[s * n * n + i * n + i] = ws[(s * n + i) % ws.len()];
        }
    }
    let cv: Vec<f64> = (0..b * t * n).map(|k| pick(k + 7)).collect();
    let (lo, hi) = (vec![-2.0; nu], vec![2.0; nu]);
    let batch = Batch {
        size: b,
        x_init: &x0,
        cost_hess: &cm,
        cost_lin: &cv,
        u_lower: if bounded { Bound::PerControl(&lo) } else { Bound::None },
        u_upper: if bounded { Bound::PerControl(&hi) } else { Bound::None },
        u_init: None,
    };
    let mut solver = Solver::new(model, t, opts);
    let sol = solver.solve(&batch);
    for i in 0..b {
        let ok = sol.x[i * t * nx..(i + 1) * t * nx].iter().chain(&sol.u[i * t * nu..(i + 1) * t * nu]).all(|v| v.is_finite())
            && sol.cost[i].is_finite()
            && sol.kkt_residual[i].is_finite();
        if sol.stop[i].non_finite() {
            if sol.converged[i] {
                return Err(format!("problem {i}: {:?} but converged", sol.stop[i]));
            }
        } else if !ok {
            return Err(format!("problem {i}: stop {:?} with non-finite numbers (cost {}, kkt {})", sol.stop[i], sol.cost[i], sol.kkt_residual[i]));
        }
    }
    let gx: Vec<f64> = (0..b * t * nx).map(|k| pick(k + 3)).collect();
    let gu: Vec<f64> = (0..b * t * nu).map(|k| pick(k + 5)).collect();
    let g = solver.backward(&batch, &sol, &gx, &gu);
    if !g.cost_hess.iter().chain(&g.cost_lin).chain(&g.x_init).all(|v| v.is_finite()) {
        return Err("a non-finite gradient".into());
    }
    for i in 0..b {
        if sol.stop[i].non_finite() && !g.status[i].masked() {
            return Err(format!("problem {i}: gradient of a non-finite solution not masked"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn solver_flags_every_non_finite_result(
        cart in any::<bool>(),
        t in 1usize..8,
        vals in prop::collection::vec(number(), 64),
        ws in prop::collection::vec(weight(), 32),
        ddp in any::<bool>(),
        tol in prop::option::of(prop::sample::select(vec![1e-9, 1e-5])),
        iters in 1usize..30,
        bounded in any::<bool>(),
    ) {
        let opts = SolverOptions { max_iters: iters, method: if ddp { Method::Ddp } else { Method::Ilqr }, tol, ..SolverOptions::default() };
        let r = if cart {
            solver_case(Cartpole::default(), t, &vals, &ws, opts, bounded)
        } else {
            solver_case(Pendulum::default(), t, &vals, &ws, opts, bounded)
        };
        if let Err(e) = r {
            prop_assert!(false, "{e}");
        }
    }
}
