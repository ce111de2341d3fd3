//! Parsing and validation of `mpc-problem/1` documents: every failure names its key and the expected shape.

use super::{BoundData, ModelDims, ModelParams, PROBLEM_FORMAT, Problem, ProblemError, SYMMETRY_RTOL};
use crate::linear::LinearModel;
use crate::solver::{GradientMode, Method, SolverOptions};
use serde_json::{Map, Value};

fn fmt_dims(d: &[usize]) -> String {
    if d.is_empty() {
        "a scalar".to_string()
    } else {
        d.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("×")
    }
}

/// Shape of a nested JSON array of numbers; `Err` describes what is wrong.
fn shape_of(v: &Value) -> Result<Vec<usize>, String> {
    match v {
        Value::Number(_) => Ok(vec![]),
        Value::Array(items) => {
            if items.is_empty() {
                return Ok(vec![0]);
            }
            let first = shape_of(&items[0])?;
            for (i, it) in items.iter().enumerate().skip(1) {
                let s = shape_of(it)?;
                if s != first {
                    return Err(format!("a ragged array (entry {i} has shape {}, entry 0 has {})", fmt_dims(&s), fmt_dims(&first)));
                }
            }
            let mut s = vec![items.len()];
            s.extend(first);
            Ok(s)
        }
        Value::Null => Err("null".into()),
        Value::Bool(_) => Err("a boolean".into()),
        Value::String(_) => Err("a string".into()),
        Value::Object(_) => Err("an object".into()),
    }
}

fn flatten_into(v: &Value, out: &mut Vec<f64>) -> Result<(), ()> {
    match v {
        Value::Number(n) => {
            let x = n.as_f64().ok_or(())?;
            if !x.is_finite() {
                return Err(());
            }
            out.push(x);
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|it| flatten_into(it, out)),
        _ => Err(()),
    }
}

/// Read `key` as an array of one of the `expected` shapes (symbolic name, dims); returns the
/// index of the matching shape and the flat data.
fn array(v: &Value, key: &str, expected: &[(&str, Vec<usize>)]) -> Result<(usize, Vec<f64>), ProblemError> {
    let want = expected
        .iter()
        .map(|(sym, d)| format!("{sym} = {}", fmt_dims(d)))
        .collect::<Vec<_>>()
        .join(" or ");
    let shape = shape_of(v).map_err(|e| ProblemError::new(key, format!("expected shape {want}, got {e}")))?;
    let Some(which) = expected.iter().position(|(_, d)| *d == shape) else {
        return Err(ProblemError::new(key, format!("expected shape {want}, got {}", fmt_dims(&shape))));
    };
    let mut out = Vec::with_capacity(shape.iter().product());
    flatten_into(v, &mut out).map_err(|_| ProblemError::new(key, "every entry must be a finite number"))?;
    Ok((which, out))
}

fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key)
}

fn require<'a>(obj: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a Value, ProblemError> {
    obj.get(key).ok_or_else(|| ProblemError::new(key, format!("missing key (expected {what})")))
}

fn number(v: &Value, key: &str) -> Result<f64, ProblemError> {
    match v.as_f64() {
        Some(x) if x.is_finite() && v.is_number() => Ok(x),
        _ => Err(ProblemError::new(key, format!("expected a finite number, got {}", short(v)))),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 { format!("{}…", &s[..s.char_indices().nth(40).map(|c| c.0).unwrap_or(s.len())]) } else { s }
}

/// `(rows, cols)` of a dense matrix param from its nested array: a matrix, or one matrix per
/// problem (its leading dimension checked against B later).
fn matrix_shape(v: &Value, key: &str, sym: &str) -> Result<(usize, usize), ProblemError> {
    let s = shape_of(v).map_err(|e| ProblemError::new(key, format!("expected shape {sym}, got {e}")))?;
    if !(s.len() == 2 || s.len() == 3) || s.contains(&0) {
        return Err(ProblemError::new(key, format!("expected shape {sym} (non-empty), got {}", fmt_dims(&s))));
    }
    Ok((s[s.len() - 2], s[s.len() - 1]))
}

/// The model parameters, each shared by the batch or given per problem (`B` of them).
fn parse_params(model: &str, obj: Option<&Map<String, Value>>, b: usize, nx: usize, nu: usize) -> Result<ModelParams, ProblemError> {
    if model == "linear" {
        let p = obj.expect("checked: linear has params");
        // Each of A, B, f: shared (one matrix) or per problem (B of them).
        let read = |key: &str, dims: Vec<usize>, sym: &str| -> Result<Option<(bool, Vec<f64>)>, ProblemError> {
            let Some(v) = p.get(key) else { return Ok(None) };
            let mut per = vec![b];
            per.extend(&dims);
            let (which, data) = array(v, &format!("params.{key}"), &[(sym, dims), (&format!("B×{sym}"), per)])?;
            Ok(Some((which == 1, data)))
        };
        let a = read("A", vec![nx, nx], "nx×nx")?.expect("checked: A present");
        let bm = read("B", vec![nx, nu], "nx×nu")?.expect("checked: B present");
        let f = read("f", vec![nx], "nx")?;
        let build = |i: usize| -> Result<LinearModel, ProblemError> {
            let pick = |(per, d): &(bool, Vec<f64>), len: usize| if *per { d[i * len..(i + 1) * len].to_vec() } else { d.clone() };
            LinearModel::new(nx, nu, pick(&a, nx * nx), pick(&bm, nx * nu), f.as_ref().map(|f| pick(f, nx)))
                .map_err(|e| ProblemError::new("params", e.0))
        };
        let per = a.0 || bm.0 || f.as_ref().is_some_and(|f| f.0);
        return if per { Ok(ModelParams::LinearPerProblem((0..b).map(build).collect::<Result<_, _>>()?)) } else { Ok(ModelParams::Linear(build(0)?)) };
    }
    let mut shared = Vec::new();
    let mut per: Vec<(String, Vec<f64>)> = Vec::new();
    for (k, v) in obj.into_iter().flatten() {
        let key = format!("params.{k}");
        if v.is_array() {
            let (_, vals) = array(v, &key, &[("B (one value per problem)", vec![b])])?;
            per.push((k.clone(), vals));
        } else {
            match v.as_f64() {
                Some(x) if x.is_finite() && v.is_number() => shared.push((k.clone(), x)),
                _ => return Err(ProblemError::new(&key, format!("expected a finite number or an array of B = {b} numbers, got {}", short(v)))),
            }
        }
    }
    if per.is_empty() {
        return Ok(ModelParams::Named(shared));
    }
    Ok(ModelParams::NamedPerProblem(
        (0..b).map(|i| shared.iter().cloned().chain(per.iter().map(|(k, vals)| (k.clone(), vals[i]))).collect()).collect(),
    ))
}

impl Problem {
    /// Parse and validate a problem document. `model_dims` gives `(nx, nu)` of a named model
    /// (every model but `linear`), or `Err` with a message for an unknown model.
    pub fn parse(text: &str, model_dims: ModelDims<'_>) -> Result<Self, ProblemError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| ProblemError::new("", format!("invalid JSON: {e}")))?;
        Self::from_value(&doc, model_dims)
    }

    /// [`Problem::parse`] on an already parsed JSON value.
    pub fn from_value(doc: &Value, model_dims: ModelDims<'_>) -> Result<Self, ProblemError> {
        let obj = doc.as_object().ok_or_else(|| ProblemError::new("", "the problem document must be a JSON object"))?;
        match require(obj, "format", "\"mpc-problem/1\"")? {
            Value::String(s) if s == PROBLEM_FORMAT => {}
            other => return Err(ProblemError::new("format", format!("expected \"{PROBLEM_FORMAT}\", got {}", short(other)))),
        }
        let model = match require(obj, "model", "a model name")? {
            Value::String(s) => s.clone(),
            other => return Err(ProblemError::new("model", format!("expected a model name (string), got {}", short(other)))),
        };
        let params_obj = match get(obj, "params") {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => return Err(ProblemError::new("params", format!("expected an object, got {}", short(other)))),
        };
        // Sizes first (from the model, or from the shapes of `linear`'s A and B, whose leading
        // dimension may be B), then B from x_init, then the parameters (shared or per problem).
        let (nx, nu) = if model == "linear" {
            let p = params_obj.ok_or_else(|| ProblemError::new("params", "missing key (the linear model needs params.A and params.B)"))?;
            for k in p.keys() {
                if !matches!(k.as_str(), "A" | "B" | "f") {
                    return Err(ProblemError::new(format!("params.{k}"), "unknown parameter of model `linear` (its parameters: A, B, f)"));
                }
            }
            let av = p.get("A").ok_or_else(|| ProblemError::new("params.A", "missing key (expected shape nx×nx)"))?;
            let (r, c) = matrix_shape(av, "params.A", "nx×nx or B×nx×nx")?;
            if r != c {
                return Err(ProblemError::new("params.A", format!("expected shape nx×nx or B×nx×nx (square), got …×{r}×{c}")));
            }
            let bv = p.get("B").ok_or_else(|| ProblemError::new("params.B", format!("missing key (expected shape nx×nu = {r}×nu)")))?;
            let (br, nu) = matrix_shape(bv, "params.B", &format!("nx×nu or B×nx×nu = {r}×nu"))?;
            if br != r {
                return Err(ProblemError::new("params.B", format!("expected shape nx×nu or B×nx×nu = {r}×nu, got …×{br}×{nu}")));
            }
            (r, nu)
        } else {
            model_dims(&model).map_err(|e| ProblemError::new("model", e))?
        };
        let n = nx + nu;
        let horizon = match require(obj, "horizon", "an integer T ≥ 1")? {
            v @ Value::Number(num) => match num.as_u64() {
                Some(t) if t >= 1 => t as usize,
                _ => return Err(ProblemError::new("horizon", format!("expected an integer T ≥ 1, got {}", short(v)))),
            },
            other => return Err(ProblemError::new("horizon", format!("expected an integer T ≥ 1, got {}", short(other)))),
        };
        let t = horizon;
        // x_init fixes B.
        let xv = require(obj, "x_init", &format!("shape B×nx = B×{nx}"))?;
        let xs = shape_of(xv).map_err(|e| ProblemError::new("x_init", format!("expected shape B×nx = B×{nx}, got {e}")))?;
        if xs.len() != 2 || xs[1] != nx || xs[0] == 0 {
            return Err(ProblemError::new("x_init", format!("expected shape B×nx = B×{nx} with B ≥ 1, got {}", fmt_dims(&xs))));
        }
        let b = xs[0];
        let (_, x_init) = array(xv, "x_init", &[("B×nx", vec![b, nx])])?;
        let params = parse_params(&model, params_obj, b, nx, nu)?;
        let cm_v = require(obj, "C", &format!("shape B×T×n×n = {b}×{t}×{n}×{n}"))?;
        let (_, mut cost_hess) = array(cm_v, "C", &[("B×T×n×n", vec![b, t, n, n])])?;
        let cv_v = require(obj, "c", &format!("shape B×T×n = {b}×{t}×{n}"))?;
        let (_, cost_lin) = array(cv_v, "c", &[("B×T×n", vec![b, t, n])])?;
        // Symmetry of every C_t, then exact symmetrisation.
        for s in 0..b * t {
            let m = &mut cost_hess[s * n * n..(s + 1) * n * n];
            let scale = m.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            for i in 0..n {
                for j in 0..i {
                    let (p, q) = (m[i * n + j], m[j * n + i]);
                    if (p - q).abs() > SYMMETRY_RTOL * scale {
                        let (bi, ti) = (s / t, s % t);
                        return Err(ProblemError::new(
                            "C",
                            format!(
                                "C[{bi}][{ti}] is not symmetric: entry [{i}][{j}] = {p} but [{j}][{i}] = {q} (tolerance {SYMMETRY_RTOL:e} × max|C[{bi}][{ti}]|)"
                            ),
                        ));
                    }
                    let avg = 0.5 * (p + q);
                    m[i * n + j] = avg;
                    m[j * n + i] = avg;
                }
            }
        }
        let bound = |key: &str| -> Result<BoundData, ProblemError> {
            match get(obj, key) {
                None => Ok(BoundData::None),
                Some(v) => {
                    let (which, data) = array(v, key, &[("nu", vec![nu]), ("B×T×nu", vec![b, t, nu])])?;
                    Ok(if which == 0 { BoundData::PerControl(data) } else { BoundData::PerStage(data) })
                }
            }
        };
        let u_lower = bound("u_lower")?;
        let u_upper = bound("u_upper")?;
        for bi in 0..b {
            for ti in 0..t {
                for i in 0..nu {
                    let lo = u_lower.at(bi, ti, i, t, nu, f64::NEG_INFINITY);
                    let hi = u_upper.at(bi, ti, i, t, nu, f64::INFINITY);
                    if lo > hi {
                        return Err(ProblemError::new(
                            "u_lower",
                            format!("lower bound above upper bound at batch {bi}, stage {ti}, control {i}: {lo} > {hi}"),
                        ));
                    }
                }
            }
        }
        let opt_array = |key: &str, sym: &str, dims: Vec<usize>| -> Result<Option<Vec<f64>>, ProblemError> {
            match get(obj, key) {
                None => Ok(None),
                Some(v) => Ok(Some(array(v, key, &[(sym, dims)])?.1)),
            }
        };
        let u_init = opt_array("u_init", "B×T×nu", vec![b, t, nu])?;
        let mut grad_x = opt_array("grad_x", "B×T×nx", vec![b, t, nx])?;
        let mut grad_u = opt_array("grad_u", "B×T×nu", vec![b, t, nu])?;
        if grad_x.is_some() || grad_u.is_some() {
            grad_x.get_or_insert_with(|| vec![0.0; b * t * nx]);
            grad_u.get_or_insert_with(|| vec![0.0; b * t * nu]);
        }
        let options = parse_options(get(obj, "solver"))?;
        Ok(Problem {
            model,
            params,
            horizon,
            batch: b,
            nx,
            nu,
            x_init,
            cost_hess,
            cost_lin,
            u_lower,
            u_upper,
            u_init,
            options,
            grad_x,
            grad_u,
        })
    }
}

/// Parse the optional `solver` object.
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x > 0)` also rejects NaN
fn parse_options(v: Option<&Value>) -> Result<SolverOptions, ProblemError> {
    let mut o = SolverOptions::default();
    let Some(v) = v else { return Ok(o) };
    let m = v.as_object().ok_or_else(|| ProblemError::new("solver", format!("expected an object, got {}", short(v))))?;
    for (k, val) in m {
        let key = format!("solver.{k}");
        match k.as_str() {
            "max_iters" => {
                o.max_iters = val
                    .as_u64()
                    .ok_or_else(|| ProblemError::new(&key, format!("expected a non-negative integer, got {}", short(val))))?
                    as usize
            }
            "eps" => {
                let e = number(val, &key)?;
                if !(e > 0.0) {
                    return Err(ProblemError::new(&key, format!("expected a positive number, got {e}")));
                }
                o.eps = e;
            }
            "line_search" => {
                let (_, steps) = match shape_of(val) {
                    Ok(s) if s.len() == 1 && s[0] >= 1 => array(val, &key, &[("a non-empty list", s)])?,
                    _ => return Err(ProblemError::new(&key, format!("expected a non-empty list of step sizes, got {}", short(val)))),
                };
                if let Some(a) = steps.iter().find(|a| !(**a > 0.0)) {
                    return Err(ProblemError::new(&key, format!("step sizes must be positive, got {a}")));
                }
                o.line_search = steps;
            }
            "gradient" => {
                o.gradient = match val.as_str() {
                    Some("exact") => GradientMode::Exact,
                    Some("gauss-newton") => GradientMode::GaussNewton,
                    _ => {
                        return Err(ProblemError::new(
                            &key,
                            format!("expected \"exact\" or \"gauss-newton\", got {}", short(val)),
                        ));
                    }
                }
            }
            "method" => {
                o.method = match val.as_str() {
                    Some("ilqr") => Method::Ilqr,
                    Some("ddp") => Method::Ddp,
                    _ => return Err(ProblemError::new(&key, format!("expected \"ilqr\" or \"ddp\", got {}", short(val)))),
                }
            }
            "tol" => {
                let t = number(val, &key)?;
                if !(t >= 0.0) {
                    return Err(ProblemError::new(&key, format!("expected a non-negative number, got {t}")));
                }
                o.tol = Some(t);
            }
            _ => {
                return Err(ProblemError::new(
                    &key,
                    "unknown solver setting (known: max_iters, eps, line_search, gradient, method, tol)",
                ));
            }
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::fixtures::{base, dims};

    fn err(v: Value) -> ProblemError {
        Problem::from_value(&v, &dims).unwrap_err()
    }

    #[test]
    fn parses_method_and_tol() {
        let mut v = base();
        v["solver"] = serde_json::json!({"method": "ddp", "tol": 1e-9});
        let p = Problem::from_value(&v, &dims).unwrap();
        assert_eq!(p.options.method, Method::Ddp);
        assert_eq!(p.options.tol, Some(1e-9));
    }

    #[test]
    fn parses_minimal_linear() {
        let p = Problem::from_value(&base(), &dims).unwrap();
        assert_eq!((p.batch, p.horizon, p.nx, p.nu), (1, 2, 2, 1));
        assert_eq!(p.options, SolverOptions::default());
        assert!(!p.wants_gradients());
    }

    #[test]
    fn names_key_and_shape() {
        let mut v = base();
        v["C"][0][1] = serde_json::json!([[1, 0], [0, 1]]);
        let e = err(v);
        assert_eq!(e.key, "C");
        assert!(e.to_string().contains("B×T×n×n = 1×2×3×3"), "{e}");

        let mut v = base();
        v.as_object_mut().unwrap().remove("c");
        let e = err(v);
        assert_eq!(e.key, "c");
        assert!(e.message.contains("missing") && e.message.contains("1×2×3"), "{e}");

        let mut v = base();
        v["C"][0][0][0][1] = serde_json::json!(0.5);
        let e = err(v);
        assert!(e.key == "C" && e.message.contains("not symmetric"), "{e}");

        let mut v = base();
        v["u_lower"] = serde_json::json!([1.0]);
        v["u_upper"] = serde_json::json!([0.5]);
        assert_eq!(err(v).key, "u_lower");

        let mut v = base();
        v["u_lower"] = serde_json::json!([[1.0]]);
        let e = err(v);
        assert!(e.message.contains("nu = 1 or B×T×nu = 1×2×1"), "{e}");

        let mut v = base();
        v["model"] = serde_json::json!("nope");
        assert_eq!(err(v).key, "model");

        let mut v = base();
        v["params"]["G"] = serde_json::json!(1.0);
        assert_eq!(err(v).key, "params.G");

        let mut v = base();
        v["x_init"] = serde_json::json!([[1.0, "a"]]);
        assert_eq!(err(v).key, "x_init");

        let mut v = base();
        v["solver"] = serde_json::json!({"gradient": "newton"});
        assert_eq!(err(v).key, "solver.gradient");

        let mut v = base();
        v["solver"] = serde_json::json!({"method": "newton"});
        let e = err(v);
        assert!(e.key == "solver.method" && e.message.contains("\"ddp\""), "{e}");

        let mut v = base();
        v["solver"] = serde_json::json!({"tol": -1.0});
        assert_eq!(err(v).key, "solver.tol");

        let e = Problem::parse("{\"format\": 1e999}", &dims).unwrap_err();
        assert!(e.message.contains("invalid JSON"), "{e}");
    }
}
