//! `mpc_rs._native`: the CPU solver of `mpc-runtime` on batch-first NumPy arrays.
//!
//! One class, `Solver(model, horizon, ...)`, built once per model, horizon and options (its
//! workspaces are allocated once and reused): `solve` takes `x_init (B, nx)`, `C (B, T, n, n)`,
//! `c (B, T, n)` and optional bounds and warm start and returns the solution; `backward` takes the
//! upstream gradients `dL/dx (B, T, nx)`, `dL/du (B, T, nu)` at the last solution and returns
//! `dL/dC`, `dL/dc`, `dL/dx_init` (and `dL/dθ` with `grad_params=True`) by implicit
//! differentiation. The GIL is released while solving. Every shape error names the argument and
//! the expected shape (`ValueError`). The Python package `mpc_rs` wraps this module (dtype and
//! memory-order conversion, documentation).

use mpc_models::ModelVisitor;
use mpc_runtime::{
    Backend, BackendError, Batch, Bound as UBound, GradStatus, GradientMode, Gradients, Method, Model, Solution, Solver,
    SolverOptions,
};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::{Arc, Mutex};

/// What Python needs to know about the model behind a solver.
#[derive(Clone, Debug)]
struct Meta {
    name: &'static str,
    nx: usize,
    nu: usize,
    param_names: Vec<String>,
    param_values: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
}

/// Builds a CPU solver for the bundled model chosen by name, with its parameters set.
struct Build<'a> {
    horizon: usize,
    opts: SolverOptions,
    params: &'a [(String, f64)],
}

impl ModelVisitor for Build<'_> {
    type Output = Result<(Box<dyn Backend>, Meta), String>;

    fn visit<M: Model>(self) -> Self::Output {
        let mut model = M::default();
        for (k, v) in self.params {
            model.set_param(k, *v).map_err(|e| format!("params: {e}"))?;
        }
        let meta = Meta {
            name: M::NAME,
            nx: M::NX,
            nu: M::NU,
            param_names: M::PARAM_NAMES.iter().map(|s| s.to_string()).collect(),
            param_values: model.param_values(),
            lower: M::CONTROL_LOWER.to_vec(),
            upper: M::CONTROL_UPPER.to_vec(),
        };
        Ok((Box::new(Solver::new(model, self.horizon, self.opts)), meta))
    }
}

/// Owned control bounds of the last solve (kept for `backward`).
#[derive(Clone, Debug)]
enum OwnedBound {
    None,
    PerControl(Vec<f64>),
    PerStage(Vec<f64>),
}

impl OwnedBound {
    fn as_bound(&self) -> UBound<'_> {
        match self {
            OwnedBound::None => UBound::None,
            OwnedBound::PerControl(v) => UBound::PerControl(v),
            OwnedBound::PerStage(v) => UBound::PerStage(v),
        }
    }
}

/// The inputs and solution of the last `solve` (what `backward` differentiates).
struct Last {
    size: usize,
    x_init: Vec<f64>,
    cost_hess: Vec<f64>,
    cost_lin: Vec<f64>,
    lower: OwnedBound,
    upper: OwnedBound,
    u_init: Option<Vec<f64>>,
    sol: Solution,
}

impl Last {
    fn batch(&self) -> Batch<'_> {
        Batch {
            size: self.size,
            x_init: &self.x_init,
            cost_hess: &self.cost_hess,
            cost_lin: &self.cost_lin,
            u_lower: self.lower.as_bound(),
            u_upper: self.upper.as_bound(),
            u_init: self.u_init.as_deref(),
        }
    }
}

/// A solve's inputs and solution, for a later `backward` (returned by `solve` as `state`).
#[pyclass(module = "mpc_rs._native", frozen)]
struct SolveState {
    inner: Arc<Last>,
}

#[pymethods]
impl SolveState {
    /// Batch size of the solve.
    #[getter]
    fn batch_size(&self) -> usize {
        self.inner.size
    }
}

/// A batched MPC solver for one bundled model and horizon (see the module documentation).
#[pyclass(module = "mpc_rs._native")]
struct NativeSolver {
    /// Behind a mutex only for `Sync` (methods take `&mut self`, so it is never contended).
    backend: Mutex<Box<dyn Backend>>,
    meta: Meta,
    horizon: usize,
    grad_params: bool,
    last: Option<Arc<Last>>,
}

/// A contiguous float64 array's data after checking its shape against `want` (`None` entries
/// of `want` are free, e.g. the batch size). Errors name `what` and both shapes.
fn take(what: &str, a: &PyReadonlyArrayDyn<'_, f64>, want: &[Option<usize>], names: &str) -> PyResult<(Vec<usize>, Vec<f64>)> {
    let shape = a.shape().to_vec();
    let ok = shape.len() == want.len() && shape.iter().zip(want).all(|(s, w)| w.is_none_or(|w| *s == w));
    if !ok {
        let w: Vec<String> = want.iter().map(|w| w.map_or("B".to_string(), |v| v.to_string())).collect();
        return Err(PyValueError::new_err(format!(
            "{what}: expected shape ({}) = {names}, got {:?}",
            w.join(", "),
            shape
        )));
    }
    let data = a.as_slice().map_err(|_| PyValueError::new_err(format!("{what}: not a C-contiguous float64 array")))?.to_vec();
    Ok((shape, data))
}

fn backend_error(e: BackendError) -> PyErr {
    match e {
        BackendError::Shape(m) => PyValueError::new_err(m),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

/// A flat vector as a NumPy array of the given shape.
fn array<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, v).reshape(shape.to_vec())?.into_any())
}

#[pymethods]
impl NativeSolver {
    #[new]
    #[pyo3(signature = (model, horizon, *, params=None, method="ilqr", gradient="exact", max_iter=50, tol=None, eps=1e-7, line_search=None, grad_params=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        model: &str,
        horizon: usize,
        params: Option<Vec<(String, f64)>>,
        method: &str,
        gradient: &str,
        max_iter: usize,
        tol: Option<f64>,
        eps: f64,
        line_search: Option<Vec<f64>>,
        grad_params: bool,
    ) -> PyResult<Self> {
        if horizon == 0 {
            return Err(PyValueError::new_err("horizon: must be at least 1"));
        }
        let method = match method {
            "ilqr" => Method::Ilqr,
            "ddp" => Method::Ddp,
            m => return Err(PyValueError::new_err(format!("method: expected 'ilqr' or 'ddp', got {m:?}"))),
        };
        let gradient = match gradient {
            "gauss-newton" | "gauss_newton" => GradientMode::GaussNewton,
            "exact" => GradientMode::Exact,
            g => return Err(PyValueError::new_err(format!("gradient: expected 'gauss-newton' or 'exact', got {g:?}"))),
        };
        if let Some(t) = tol
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(PyValueError::new_err(format!("tol: expected a non-negative number, got {t}")));
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(PyValueError::new_err(format!("eps: expected a positive number, got {eps}")));
        }
        let mut opts = SolverOptions { max_iters: max_iter, eps, method, gradient, tol, grad_params, ..SolverOptions::default() };
        if let Some(steps) = line_search {
            if steps.is_empty() || steps.iter().any(|a| !(a.is_finite() && *a > 0.0)) {
                return Err(PyValueError::new_err(format!("line_search: expected a non-empty list of positive step sizes, got {steps:?}")));
            }
            opts.line_search = steps;
        }
        let params = params.unwrap_or_default();
        let build = Build { horizon, opts, params: &params };
        let (backend, meta) = mpc_models::dispatch(model, build)
            .ok_or_else(|| {
                PyValueError::new_err(format!("model: unknown model {model:?} (bundled: {})", MODELS.join(", ")))
            })?
            .map_err(PyValueError::new_err)?;
        Ok(NativeSolver { backend: Mutex::new(backend), meta, horizon, grad_params, last: None })
    }

    /// Model name.
    #[getter]
    fn model(&self) -> &'static str {
        self.meta.name
    }
    /// State dimension.
    #[getter]
    fn nx(&self) -> usize {
        self.meta.nx
    }
    /// Control dimension.
    #[getter]
    fn nu(&self) -> usize {
        self.meta.nu
    }
    /// Horizon T.
    #[getter]
    fn horizon(&self) -> usize {
        self.horizon
    }
    /// The model's parameters (name → value) this solver uses.
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.meta.param_names.iter().zip(&self.meta.param_values) {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    /// The model's control bounds (lower, upper), each of length nu (±inf where unbounded).
    #[getter]
    fn control_bounds(&self) -> (Vec<f64>, Vec<f64>) {
        (self.meta.lower.clone(), self.meta.upper.clone())
    }

    /// Solve a batch; see `mpc_rs.Solver.solve`.
    #[pyo3(signature = (x_init, cost_hess, cost_lin, u_lower=None, u_upper=None, u_init=None))]
    fn solve<'py>(
        &mut self,
        py: Python<'py>,
        x_init: PyReadonlyArrayDyn<'py, f64>,
        cost_hess: PyReadonlyArrayDyn<'py, f64>,
        cost_lin: PyReadonlyArrayDyn<'py, f64>,
        u_lower: Option<PyReadonlyArrayDyn<'py, f64>>,
        u_upper: Option<PyReadonlyArrayDyn<'py, f64>>,
        u_init: Option<PyReadonlyArrayDyn<'py, f64>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (nx, nu, t) = (self.meta.nx, self.meta.nu, self.horizon);
        let n = nx + nu;
        let (shape, x0) = take("x_init", &x_init, &[None, Some(nx)], "(B, nx)")?;
        let b = shape[0];
        if b == 0 {
            return Err(PyValueError::new_err("x_init: the batch is empty (B = 0)"));
        }
        let (_, cm) = take("C", &cost_hess, &[Some(b), Some(t), Some(n), Some(n)], "(B, T, nx+nu, nx+nu)")?;
        let (_, cv) = take("c", &cost_lin, &[Some(b), Some(t), Some(n)], "(B, T, nx+nu)")?;
        let bound = |what: &str, a: &Option<PyReadonlyArrayDyn<'py, f64>>, model: &[f64]| -> PyResult<OwnedBound> {
            match a {
                None => Ok(if model.iter().all(|v| v.is_infinite()) {
                    OwnedBound::None
                } else {
                    OwnedBound::PerControl(model.to_vec())
                }),
                Some(a) if a.ndim() == 1 => Ok(OwnedBound::PerControl(take(what, a, &[Some(nu)], "(nu,)")?.1)),
                Some(a) => Ok(OwnedBound::PerStage(take(what, a, &[Some(b), Some(t), Some(nu)], "(nu,) or (B, T, nu)")?.1)),
            }
        };
        let lower = bound("u_lower", &u_lower, &self.meta.lower)?;
        let upper = bound("u_upper", &u_upper, &self.meta.upper)?;
        let u0 = match &u_init {
            None => None,
            Some(a) => Some(take("u_init", a, &[Some(b), Some(t), Some(nu)], "(B, T, nu)")?.1),
        };
        let mut last = Last { size: b, x_init: x0, cost_hess: cm, cost_lin: cv, lower, upper, u_init: u0, sol: Solution::default() };
        let backend = self.backend.get_mut().map_err(|_| PyRuntimeError::new_err("solve: an earlier call panicked"))?;
        let mut sol = Solution::default();
        py.detach(|| backend.try_solve_into(&last.batch(), &mut sol)).map_err(backend_error)?;
        let out = PyDict::new(py);
        out.set_item("x", array(py, sol.x.clone(), &[b, t, nx])?)?;
        out.set_item("u", array(py, sol.u.clone(), &[b, t, nu])?)?;
        out.set_item("cost", array(py, sol.cost.clone(), &[b])?)?;
        out.set_item("iterations", array(py, sol.iterations.iter().map(|&i| i as i64).collect(), &[b])?)?;
        out.set_item("converged", array(py, sol.converged.clone(), &[b])?)?;
        out.set_item("kkt_residual", array(py, sol.kkt_residual.clone(), &[b])?)?;
        out.set_item("stop", sol.stop.iter().map(|s| s.name()).collect::<Vec<_>>())?;
        last.sol = sol;
        let last = Arc::new(last);
        out.set_item("state", SolveState { inner: last.clone() })?;
        self.last = Some(last);
        Ok(out)
    }

    /// Gradients at the solution of `state` (the last solve when `None`); see
    /// `mpc_rs.Solver.backward`.
    #[pyo3(signature = (grad_x, grad_u, state=None))]
    fn backward<'py>(
        &mut self,
        py: Python<'py>,
        grad_x: PyReadonlyArrayDyn<'py, f64>,
        grad_u: PyReadonlyArrayDyn<'py, f64>,
        state: Option<PyRef<'py, SolveState>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let last = match &state {
            Some(s) => s.inner.clone(),
            None => self.last.clone().ok_or_else(|| PyRuntimeError::new_err("backward: call solve first"))?,
        };
        let (nx, nu, t, b) = (self.meta.nx, self.meta.nu, self.horizon, last.size);
        let n = nx + nu;
        let (_, gx) = take("grad_x", &grad_x, &[Some(b), Some(t), Some(nx)], "(B, T, nx) of the last solve")?;
        let (_, gu) = take("grad_u", &grad_u, &[Some(b), Some(t), Some(nu)], "(B, T, nu) of the last solve")?;
        let backend = self.backend.get_mut().map_err(|_| PyRuntimeError::new_err("backward: an earlier call panicked"))?;
        let mut g = Gradients::default();
        py.detach(|| backend.try_backward_into(&last.batch(), &last.sol, &gx, &gu, &mut g)).map_err(backend_error)?;
        let out = PyDict::new(py);
        out.set_item("C", array(py, g.cost_hess, &[b, t, n, n])?)?;
        out.set_item("c", array(py, g.cost_lin, &[b, t, n])?)?;
        out.set_item("x_init", array(py, g.x_init, &[b, nx])?)?;
        if self.grad_params {
            let np = self.meta.param_names.len();
            out.set_item("params", array(py, g.params, &[b, np])?)?;
        }
        out.set_item("status", g.status.iter().map(|s| grad_status(*s)).collect::<Vec<_>>())?;
        Ok(out)
    }
}

fn grad_status(s: GradStatus) -> &'static str {
    s.name()
}

/// The bundled models.
const MODELS: &[&str] = &["pendulum", "cartpole", "quadrotor"];

/// The bundled models' names.
#[pyfunction]
fn models() -> Vec<&'static str> {
    MODELS.to_vec()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeSolver>()?;
    m.add_class::<SolveState>()?;
    m.add_function(wrap_pyfunction!(models, m)?)?;
    Ok(())
}
