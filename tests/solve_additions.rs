//! `mpc solve` with the format's Additions (`problem-format.md`): per-problem parameters (named
//! models and `linear`), `solver.method`, `solver.tol`, and `kkt_residual` in the solution.
//!
//! A batch with per-problem parameters must give, problem for problem, exactly (to the bit) what
//! solving each problem alone with its parameters gives; DDP and iLQR with a KKT tolerance must
//! converge to the same solution with residuals under the tolerance; bad shapes exit 2 naming
//! the key.

mod common;

use common::mpc;
use serde_json::{Value, json};

fn solve(doc: &Value) -> Result<Value, String> {
    let dir = std::env::temp_dir().join(format!("mpc-additions-{}-{:x}", std::process::id(), rand_tag(doc)));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("problem.json");
    std::fs::write(&p, doc.to_string()).unwrap();
    let out = mpc().args(["solve", "--problem"]).arg(&p).output().expect("run mpc");
    std::fs::remove_dir_all(&dir).ok();
    if !out.status.success() {
        return Err(format!("exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(serde_json::from_slice(&out.stdout).expect("solution JSON"))
}

fn rand_tag(doc: &Value) -> u64 {
    doc.to_string().bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// The embedded example (4 quadrotor hover problems with upstream gradients).
fn example() -> Value {
    let out = mpc().args(["solve", "--print-example"]).output().expect("run mpc");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Problem `i` of a document as a document of one problem.
fn single(doc: &Value, i: usize) -> Value {
    let mut d = doc.clone();
    for k in ["x_init", "C", "c", "u_init", "grad_x", "grad_u"] {
        if let Some(v) = doc.get(k) {
            d[k] = json!([v[i].clone()]);
        }
    }
    d
}

#[test]
fn per_problem_params_equal_solving_each_problem_alone() {
    let mut doc = example();
    let masses = [0.8, 1.0, 1.3, 2.0];
    doc["params"]["mass"] = json!(masses);
    let batch = solve(&doc).unwrap();
    for (i, m) in masses.iter().enumerate() {
        let mut one = single(&doc, i);
        one["params"]["mass"] = json!(m);
        let alone = solve(&one).unwrap();
        for k in ["x", "u", "grad_C", "grad_c", "grad_x_init"] {
            assert_eq!(batch[k][i], alone[k][0], "{k} of problem {i}");
        }
        for k in ["cost", "iterations", "converged", "kkt_residual"] {
            assert_eq!(batch[k][i], alone[k][0], "{k} of problem {i}");
        }
    }
    // The masses matter: different problems, different controls.
    assert_ne!(batch["u"][0], batch["u"][3]);

    // A wrong number of values names the key and B.
    doc["params"]["mass"] = json!([1.0, 2.0, 3.0]);
    let e = solve(&doc).unwrap_err();
    assert!(e.contains("exit Some(2)") && e.contains("params.mass") && e.contains("B (one value per problem) = 4"), "{e}");
}

#[test]
fn per_problem_linear_models() {
    let a = |k: f64| json!([[1.0, 0.1], [0.0, k]]);
    let doc = json!({
        "format": "mpc-problem/1",
        "model": "linear",
        "params": {"A": [a(1.0), a(0.9)], "B": [[0.0], [0.1]], "f": [[0.0, 0.01], [0.0, -0.01]]},
        "horizon": 4,
        "x_init": [[1.0, 0.0], [0.5, -0.2]],
        "C": vec![json!(vec![json!([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.1]]); 4]); 2],
        "c": vec![json!(vec![json!([0.0, 0.0, 0.0]); 4]); 2],
        "u_lower": [-1.0],
        "u_upper": [1.0],
    });
    let batch = solve(&doc).unwrap();
    for (i, (ak, f)) in [(1.0, [0.0, 0.01]), (0.9, [0.0, -0.01])].iter().enumerate() {
        let mut one = single(&doc, i);
        one["params"] = json!({"A": a(*ak), "B": [[0.0], [0.1]], "f": f});
        let alone = solve(&one).unwrap();
        assert_eq!(batch["u"][i], alone["u"][0], "u of problem {i}");
        assert_eq!(batch["cost"][i], alone["cost"][0], "cost of problem {i}");
    }
    let mut bad = doc.clone();
    bad["params"]["A"] = json!([a(1.0), a(0.9), a(0.8)]);
    let e = solve(&bad).unwrap_err();
    assert!(e.contains("params.A") && e.contains("B×nx×nx = 2×2×2"), "{e}");
}

#[test]
fn method_and_tol_give_the_same_optimum_with_small_residuals() {
    let mut doc = example();
    let tol = 1e-9;
    let mut sols = Vec::new();
    for method in ["ilqr", "ddp"] {
        doc["solver"] = json!({"method": method, "tol": tol, "max_iters": 200, "gradient": "exact"});
        let s = solve(&doc).unwrap();
        for (i, r) in s["kkt_residual"].as_array().unwrap().iter().enumerate() {
            assert!(r.as_f64().unwrap() <= tol, "{method} problem {i}: residual {r}");
            assert_eq!(s["converged"][i], true);
            assert_eq!(s["stop"][i], "tolerance", "{method} problem {i}");
        }
        sols.push(s);
    }
    let u = |s: &Value| -> Vec<f64> { s["u"].as_array().unwrap().iter().flat_map(|p| p.as_array().unwrap().iter().flat_map(|t| t.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))).collect() };
    let du = u(&sols[0]).iter().zip(u(&sols[1])).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(du < 1e-7, "iLQR and DDP differ by {du}");
    // Without tol the solution still reports its residual (step-size stopping as before).
    doc["solver"] = json!({"max_iters": 50});
    let s = solve(&doc).unwrap();
    assert_eq!(s["kkt_residual"].as_array().map(Vec::len), Some(4));

    doc["solver"] = json!({"method": "newton"});
    let e = solve(&doc).unwrap_err();
    assert!(e.contains("exit Some(2)") && e.contains("solver.method"), "{e}");
}
