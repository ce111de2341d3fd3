//! `mpc solve` end to end: every reference fixture in `tests/fixtures` (the reference fixtures of `../shared/fixtures`, copied into the repository) is solved by the
//! binary and compared exactly as `shared/tools/compare_solutions.py` does (x, u to 1e-6
//! absolute; cost to 1e-6 relative to max|cost_ref|; grad_C, grad_c, grad_x_init to 1e-5
//! relative to the largest entry of the reference array; converged flags equal), and malformed
//! documents are rejected with exit status 2, a message naming the key, and no output.

mod common;

use common::{fixture_names, fixtures_dir, mpc, read_json, solve_file, tmp_dir};
use serde_json::Value;
use std::path::Path;

/// Prefix of this test's temporary directories.
const TMP: &str = "mpc-solve-test";

fn flat(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|e| flat(e, out)),
        other => out.push(other.clone()),
    }
}

fn shape(v: &Value) -> Vec<usize> {
    match v {
        Value::Array(a) => {
            let mut s = vec![a.len()];
            if let Some(f) = a.first() {
                s.extend(shape(f));
            }
            s
        }
        _ => vec![],
    }
}

fn numbers(v: &Value, key: &str) -> Vec<f64> {
    let mut out = Vec::new();
    flat(v, &mut out);
    out.iter().map(|e| e.as_f64().unwrap_or_else(|| panic!("{key}: non-number entry {e}"))).collect()
}

/// Compare one candidate with its reference; `Err` lists every violation.
fn compare(reference: &Value, cand: &Value) -> Result<String, String> {
    let mut bad = Vec::new();
    let mut report = Vec::new();
    if cand["format"] != "mpc-solution/1" {
        return Err(format!("format is {}", cand["format"]));
    }
    if !cand["backend"].is_string() {
        return Err("backend is not a string".into());
    }
    let mut keys: Vec<(&str, f64, bool)> = vec![("x", 1e-6, false), ("u", 1e-6, false), ("cost", 1e-6, true)];
    for k in ["grad_C", "grad_c", "grad_x_init"] {
        if reference.get(k).is_some() {
            keys.push((k, 1e-5, true));
        }
    }
    for (key, tol, rel) in keys {
        let (r, c) = (&reference[key], &cand[key]);
        if c.is_null() {
            bad.push(format!("{key}: missing"));
            continue;
        }
        if shape(r) != shape(c) {
            bad.push(format!("{key}: shape {:?}, expected {:?}", shape(c), shape(r)));
            continue;
        }
        let (rv, cv) = (numbers(r, key), numbers(c, key));
        let diff = rv.iter().zip(&cv).map(|(a, b)| (a - b).abs()).fold(0.0f64, f64::max);
        let scale = if rel { rv.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-8) } else { 1.0 };
        let err = diff / scale;
        report.push(format!("{key} {err:.1e}"));
        if err.is_nan() || err > tol {
            bad.push(format!("{key}: error {err:.3e} > {tol:.0e}"));
        }
    }
    if reference["converged"] != cand["converged"] {
        bad.push(format!("converged {} vs reference {}", cand["converged"], reference["converged"]));
    }
    match cand["iterations"].as_array() {
        Some(a) if a.len() == reference["iterations"].as_array().unwrap().len() && a.iter().all(|v| v.is_u64()) => {}
        _ => bad.push(format!("iterations: {}", cand["iterations"])),
    }
    if bad.is_empty() { Ok(report.join(", ")) } else { Err(bad.join("; ")) }
}

#[test]
fn every_fixture_is_reproduced_by_mpc_solve() {
    let Some(dir) = fixtures_dir() else {
        eprintln!("SKIPPED: fixtures not found at {}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
        return;
    };
    let out_dir = tmp_dir(TMP, "fixtures");
    let names = fixture_names(&dir);
    assert!(!names.is_empty(), "no *.problem.json in {}", dir.display());
    let mut failures = Vec::new();
    for name in &names {
        let problem = dir.join(format!("{name}.problem.json"));
        let out = out_dir.path().join(format!("{name}.solution.json"));
        let _ = std::fs::remove_file(&out);
        let st = solve_file(&problem, &out);
        if !st.status.success() {
            failures.push(format!("{name}: exit {:?}: {}", st.status.code(), String::from_utf8_lossy(&st.stderr)));
            continue;
        }
        let cand: Value = read_json(&out);
        match compare(&reference_solution(&dir, name), &cand) {
            Ok(r) => eprintln!("PASS {name}: {r}"),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "fixtures failed:\n{}", failures.join("\n"));
}

fn reference_solution(dir: &Path, name: &str) -> Value {
    read_json(dir.join(format!("{name}.solution.json")))
}

/// Solve a problem document in-process with the hand-written models of `mpc-oracles`
/// (second-order forward-mode AD, written straight from models.md) instead of the generated
/// ones, and write the solution document as `mpc solve` does.
fn solve_with_oracles(text: &str) -> Result<String, String> {
    use mpc_oracles::{RefCartpole, RefDynamics, RefModel, RefPendulum, RefQuadrotor};
    use mpc_runtime::problem::{ModelParams, Problem, solution_json};
    use mpc_runtime::{Dynamics, Solver};
    fn run<M: RefModel, const N: usize>(p: &Problem) -> Result<String, String> {
        let build = |ps: &[(String, f64)]| -> Result<RefDynamics<M, N>, String> {
            let mut m = M::default();
            for (k, v) in ps {
                m.set_param(k, *v)?;
            }
            Ok(RefDynamics::new(m))
        };
        let batch = p.as_batch();
        let upstream = p.grad_x.as_deref().zip(p.grad_u.as_deref());
        let (sol, grads) = match &p.params {
            ModelParams::Named(ps) => {
                let mut solver = Solver::new(build(ps)?, p.horizon, p.options.clone());
                let sol = solver.solve(&batch);
                let grads = upstream.map(|(gx, gu)| solver.backward(&batch, &sol, gx, gu));
                (sol, grads)
            }
            ModelParams::NamedPerProblem(lists) => {
                let models = lists.iter().map(|ps| build(ps)).collect::<Result<Vec<_>, _>>()?;
                mpc_runtime::solve_each(&models, p.horizon, &p.options, &batch, upstream)
            }
            _ => return Err("not a named model".into()),
        };
        assert_eq!(RefDynamics::<M, N>::new(M::default()).np(), 0, "the oracles have no parameter derivatives");
        Ok(solution_json(p, &sol, grads.as_ref(), &[], "cpu"))
    }
    let dims = |m: &str| -> Result<(usize, usize), String> {
        match m {
            "pendulum" => Ok((RefPendulum::NX, RefPendulum::NU)),
            "cartpole" => Ok((RefCartpole::NX, RefCartpole::NU)),
            "quadrotor" => Ok((RefQuadrotor::NX, RefQuadrotor::NU)),
            other => Err(format!("no oracle for `{other}`")),
        }
    };
    let p = Problem::parse(text, &dims).map_err(|e| e.to_string())?;
    match p.model.as_str() {
        "pendulum" => run::<RefPendulum, 4>(&p),
        "cartpole" => run::<RefCartpole, 6>(&p),
        "quadrotor" => run::<RefQuadrotor, 14>(&p),
        other => Err(format!("no oracle for `{other}`")),
    }
}

/// The fixtures again, solved with the hand-written oracle models in place of the generated
/// ones: the generated derivatives are not what makes the fixtures pass.
#[test]
fn every_fixture_is_reproduced_with_the_hand_written_models() {
    let Some(dir) = fixtures_dir() else {
        eprintln!("SKIPPED: fixtures not found");
        return;
    };
    let names = fixture_names(&dir);
    let mut failures = Vec::new();
    let mut solved = 0;
    for name in &names {
        let text = std::fs::read_to_string(dir.join(format!("{name}.problem.json"))).unwrap();
        // `linear` is defined by its matrices: there is nothing hand-written to swap in.
        if serde_json::from_str::<Value>(&text).unwrap()["model"] == "linear" {
            continue;
        }
        solved += 1;
        match solve_with_oracles(&text).map(|j| serde_json::from_str::<Value>(&j).unwrap()) {
            Ok(cand) => match compare(&reference_solution(&dir, name), &cand) {
                Ok(r) => eprintln!("PASS {name} (oracles): {r}"),
                Err(e) => failures.push(format!("{name} (oracles): {e}")),
            },
            Err(e) => failures.push(format!("{name} (oracles): {e}")),
        }
    }
    assert!(failures.is_empty(), "fixtures failed with the oracle models:\n{}", failures.join("\n"));
    assert!(solved >= 6, "expected the 6 pendulum, cart-pole and quadrotor fixtures, found {solved}");
}

#[test]
fn stdout_when_no_out_and_comparator_rejects_a_perturbed_answer() {
    let Some(dir) = fixtures_dir() else {
        eprintln!("SKIPPED: fixtures not found");
        return;
    };
    let st = mpc().args(["solve", "--problem"]).arg(dir.join("pendulum_exact.problem.json")).output().unwrap();
    assert!(st.status.success());
    let mut cand: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(cand["backend"], "cpu");
    let reference: Value = read_json(dir.join("pendulum_exact.solution.json"));
    compare(&reference, &cand).unwrap();
    // The Gauss-Newton fixture's gradients differ from the exact ones: the comparison must see it.
    let gn: Value = read_json(dir.join("pendulum.solution.json"));
    assert!(compare(&gn, &cand).is_err(), "exact gradients accepted against the Gauss-Newton reference");
    // And a 2e-6 change of one control is caught.
    let u = cand["u"][0][0][0].as_f64().unwrap();
    cand["u"][0][0][0] = Value::from(u + 2e-6);
    assert!(compare(&reference, &cand).is_err());
}

/// A small valid linear problem to break in various ways.
fn small_problem() -> Value {
    serde_json::json!({
        "format": "mpc-problem/1",
        "model": "linear",
        "params": {"A": [[1.0, 0.1], [0.0, 1.0]], "B": [[0.0], [0.1]]},
        "horizon": 3,
        "x_init": [[1.0, 0.0], [0.5, -0.5]],
        "C": vec![vec![vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0], vec![0.0, 0.0, 0.1]]; 3]; 2],
        "c": vec![vec![vec![0.0; 3]; 3]; 2],
        "u_lower": [-1.0],
        "u_upper": [1.0],
        "grad_x": vec![vec![vec![1.0, 0.0]; 3]; 2],
        "grad_u": vec![vec![vec![0.0]; 3]; 2],
    })
}

fn run_doc(doc: &Value, tag: &str) -> (Option<i32>, String, bool) {
    let d = tmp_dir(TMP, tag);
    let p = d.path().join("p.json");
    let out = d.path().join("s.json");
    let _ = std::fs::remove_file(&out);
    std::fs::write(&p, doc.to_string()).unwrap();
    let st = solve_file(&p, &out);
    (st.status.code(), String::from_utf8_lossy(&st.stderr).into_owned(), out.exists())
}

#[test]
fn malformed_documents_exit_2_name_the_key_and_write_nothing() {
    let (code, err, wrote) = run_doc(&small_problem(), "ok");
    assert_eq!(code, Some(0), "{err}");
    assert!(wrote);

    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "missing c",
            Box::new(|v| drop(v.as_object_mut().unwrap().remove("c"))),
            "c: missing key (expected shape B×T×n = 2×3×3)",
        ),
        (
            "wrong C shape",
            Box::new(|v| v["C"][1][2] = serde_json::json!([[1.0, 0.0], [0.0, 1.0]])),
            "C: expected shape B×T×n×n = 2×3×3×3",
        ),
        ("non-symmetric C", Box::new(|v| v["C"][0][1][0][2] = Value::from(0.3)), "not symmetric"),
        ("string entry", Box::new(|v| v["x_init"][0][1] = Value::from("x")), "x_init"),
        (
            "lower above upper",
            Box::new(|v| v["u_lower"] = serde_json::json!([2.0])),
            "u_lower: lower bound above upper bound",
        ),
        ("unknown model", Box::new(|v| v["model"] = Value::from("segway")), "model: unknown model `segway`"),
        ("unknown linear param", Box::new(|v| v["params"]["K"] = Value::from(1.0)), "params.K"),
        ("bad grad_u", Box::new(|v| v["grad_u"] = serde_json::json!([[0.0]])), "grad_u: expected shape B×T×nu = 2×3×1"),
        ("bad horizon", Box::new(|v| v["horizon"] = Value::from(0)), "horizon"),
        ("bad format", Box::new(|v| v["format"] = Value::from("mpc-problem/2")), "format"),
        ("bad gradient mode", Box::new(|v| v["solver"] = serde_json::json!({"gradient": "newton"})), "solver.gradient"),
    ];
    for (what, edit, want) in cases {
        let mut doc = small_problem();
        edit(&mut doc);
        let (code, err, wrote) = run_doc(&doc, "bad");
        assert_eq!(code, Some(2), "{what}: exit {code:?}, stderr {err}");
        assert!(err.contains(want), "{what}: stderr {err:?} does not mention {want:?}");
        assert!(!wrote, "{what}: an output file was written");
    }

    // Unknown parameter of a bundled model.
    let mut doc = small_problem();
    doc["model"] = Value::from("pendulum");
    doc["params"] = serde_json::json!({"g": 10.0, "mass": 1.0});
    doc["x_init"] = serde_json::json!([[1.0, 0.0, 0.0]]);
    doc["C"] = serde_json::json!(vec![vec![vec![vec![0.0; 4]; 4]; 3]; 1]);
    doc["c"] = serde_json::json!(vec![vec![vec![0.0; 4]; 3]; 1]);
    doc.as_object_mut().unwrap().remove("grad_x");
    doc.as_object_mut().unwrap().remove("grad_u");
    let (code, err, wrote) = run_doc(&doc, "param");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("params.mass"), "{err}");
    assert!(!wrote);

    // Invalid JSON (a number out of f64 range).
    let d = tmp_dir(TMP, "json");
    std::fs::write(d.path().join("p.json"), "{\"format\": \"mpc-problem/1\", \"horizon\": 1e999}").unwrap();
    let st = mpc().args(["solve", "--problem"]).arg(d.path().join("p.json")).output().unwrap();
    assert_eq!(st.status.code(), Some(2));
    assert!(st.stdout.is_empty());
}

#[test]
fn non_convergence_is_reported_not_an_error() {
    let mut doc = small_problem();
    doc["model"] = Value::from("pendulum");
    doc["params"] = serde_json::json!({});
    doc["horizon"] = Value::from(10);
    doc["x_init"] = serde_json::json!([[2.5f64.cos(), 2.5f64.sin(), 0.3]]);
    let mut cm = vec![vec![0.0; 4]; 4];
    cm[0][0] = 1.0;
    cm[1][1] = 1.0;
    cm[2][2] = 0.1;
    cm[3][3] = 0.001;
    doc["C"] = serde_json::json!(vec![vec![cm; 10]; 1]);
    doc["c"] = serde_json::json!(vec![vec![vec![-1.0, 0.0, 0.0, 0.0]; 10]; 1]);
    doc["u_lower"] = serde_json::json!([-2.0]);
    doc["u_upper"] = serde_json::json!([2.0]);
    doc["solver"] = serde_json::json!({"max_iters": 1, "eps": 1e-12});
    doc.as_object_mut().unwrap().remove("grad_x");
    doc.as_object_mut().unwrap().remove("grad_u");
    let d = tmp_dir(TMP, "nonconv");
    std::fs::write(d.path().join("p.json"), doc.to_string()).unwrap();
    let st = mpc().args(["solve", "--problem"]).arg(d.path().join("p.json")).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let sol: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(sol["converged"], serde_json::json!([false]));
    assert_eq!(sol["iterations"], serde_json::json!([1]));
}

/// Timings of the CPU solver on the quadrotor hover task with the generated model (not a
/// correctness test; run with `cargo test --release --test solve_fixtures -- --ignored
/// --nocapture`).
#[test]
#[ignore]
fn perf_quadrotor_hover() {
    use mpc_models::Quadrotor;
    use mpc_runtime::{Batch, Bound, GradientMode, Solver, SolverOptions};
    use std::time::Instant;
    let model = Quadrotor::default();
    let lo = [0.0, -10.0, -10.0, -4.0];
    let hi = [34.0, 10.0, 10.0, 4.0];
    for (b, t, k) in [(1usize, 10usize, 5usize), (1, 10, 50), (16, 10, 5), (256, 10, 5), (256, 10, 50)] {
        let sc = mpc_models::scenarios::quadrotor_hover(&model, b, t, 42);
        let batch = Batch {
            size: b,
            x_init: &sc.x_init,
            cost_hess: &sc.cost_c,
            cost_lin: &sc.cost_q,
            u_lower: Bound::PerControl(&lo),
            u_upper: Bound::PerControl(&hi),
            u_init: Some(&sc.u_init),
        };
        for mode in [GradientMode::GaussNewton, GradientMode::Exact] {
            let opts = SolverOptions { max_iters: k, eps: 1e-300, gradient: mode, ..SolverOptions::default() };
            let mut s = Solver::new(model, t, opts);
            let mut sol = s.solve(&batch);
            let gx = vec![1.0; b * t * 10];
            let gu = vec![1.0; b * t * 4];
            let mut g = s.backward(&batch, &sol, &gx, &gu);
            let reps = (2000 / (b * k)).max(3);
            let t0 = Instant::now();
            for _ in 0..reps {
                s.solve_into(&batch, &mut sol);
            }
            let fwd = t0.elapsed().as_secs_f64() / reps as f64;
            let t0 = Instant::now();
            for _ in 0..reps {
                s.backward_into(&batch, &sol, &gx, &gu, &mut g);
            }
            let bwd = t0.elapsed().as_secs_f64() / reps as f64;
            eprintln!(
                "B={b:4} T={t} iters={k:2} {mode:?}: forward {:.3} ms, backward {:.3} ms (iterations {:?})",
                fwd * 1e3,
                bwd * 1e3,
                &sol.iterations[..1]
            );
        }
    }
}
