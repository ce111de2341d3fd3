//! `mpc_pyo3`: the CPU solver of `mpc-runtime` as a Python class on batch-first NumPy arrays, for
//! any `#[mpc_model]` types. The `mpc_rs` package is this library over the bundled models; a
//! user's crate exports its own models into a Python module of its own with one line:
//!
//! ```ignore
//! mpc_pyo3::python_module!(ballbeam_native, [BallBeam]);
//! ```
//!
//! The module gets the class `NativeSolver(model, horizon, ...)`, built once per model, horizon
//! and options (its workspaces are allocated once and reused): `solve` takes `x_init (B, nx)`,
//! `C (B, T, n, n)`, `c (B, T, n)`, optional bounds, warm start and per-problem parameters
//! `(B, n_params)`, and returns the solution; `backward` takes the upstream gradients
//! `dL/dx (B, T, nx)`, `dL/du (B, T, nu)` at a solution and returns `dL/dC`, `dL/dc`,
//! `dL/dx_init` (and `dL/dθ` with `grad_params=True`) by implicit differentiation. The GIL is
//! released while solving. Every shape error names the argument and the expected shape
//! (`ValueError`). The Python class `mpc_rs.Solver(model, horizon, module=...)` wraps any such
//! module (dtype and memory-order conversion, parameters by name, documentation).

use mpc_cuda::host::HostBuild;
use mpc_cuda::render::{KernelOptions, Precision};
use mpc_cuda::select::{self, Needs, Preference};
use mpc_cuda::{CudaSolver, EmulatedSolver};
use mpc_runtime::{
    Backend, BackendError, BackendKind, Batch, Bound as UBound, GradStatus, GradientMode, Gradients, Method, Model, Solution,
    SolveEach, Solver, SolverOptions,
};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

pub use numpy;
pub use pyo3;

/// Exports `#[mpc_model]` types as the Python extension module `name` (the crate's
/// `[lib] name` / maturin `module-name`): `mpc_pyo3::python_module!(my_robots, [Arm, Boat]);`.
/// Python then solves them with `mpc_rs.Solver("arm", horizon, module=my_robots)` (the model's
/// `Model::NAME`), or with the module's own `NativeSolver`.
#[macro_export]
macro_rules! python_module {
    ($name:ident, [$($model:ty),+ $(,)?]) => {
        #[$crate::pyo3::pymodule]
        #[pyo3(crate = "::mpc_pyo3::pyo3")]
        fn $name(m: &$crate::pyo3::Bound<'_, $crate::pyo3::types::PyModule>) -> $crate::pyo3::PyResult<()> {
            $crate::add_models(m, ::std::vec![$($crate::entry::<$model>()),+])
        }
    };
}

/// One model type a module offers, by its `Model::NAME` (made by [`entry`]).
pub struct ModelEntry {
    name: &'static str,
    make: fn(&Config<'_>) -> Result<Box<dyn Engine>, String>,
}

/// The entry of model type `M`.
pub fn entry<M: Model>() -> ModelEntry {
    ModelEntry { name: M::NAME, make: Typed::<M>::make }
}

/// The models of this extension module (each extension module links its own copy of this
/// library, so each has its own list).
static REGISTRY: OnceLock<Vec<ModelEntry>> = OnceLock::new();

/// Adds the solver classes and `models()` to `m`, solving the given models. Call once per
/// module (what [`python_module!`] does); a module that adds classes of its own calls this from
/// its `#[pymodule]` function.
pub fn add_models(m: &Bound<'_, PyModule>, entries: Vec<ModelEntry>) -> PyResult<()> {
    let names: Vec<&str> = entries.iter().map(|e| e.name).collect();
    if let Some(dup) = names.iter().enumerate().find_map(|(i, n)| names[..i].contains(n).then_some(*n)) {
        return Err(PyValueError::new_err(format!("python_module: model {dup:?} is listed twice")));
    }
    let have = REGISTRY.get_or_init(|| entries);
    if have.iter().map(|e| e.name).ne(names.iter().copied()) {
        return Err(PyRuntimeError::new_err("add_models: this library was already registered with other models"));
    }
    m.add_class::<NativeSolver>()?;
    m.add_class::<SolveState>()?;
    m.add_function(wrap_pyfunction!(models, m)?)?;
    Ok(())
}

fn registry() -> &'static [ModelEntry] {
    REGISTRY.get().map_or(&[], Vec::as_slice)
}

/// The names of the models this module solves.
#[pyfunction]
fn models() -> Vec<&'static str> {
    registry().iter().map(|e| e.name).collect()
}

/// Where a solver runs (Python's `backend=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The CPU solver.
    Cpu,
    /// The GPU (an error naming the reason when there is none).
    Cuda,
    /// The GPU when there is one, else the CPU.
    Auto,
    /// The CUDA kernels built for the host and run by the GPU's launch orchestration (no GPU
    /// needed; slow: for checking the GPU path).
    Emulate,
}

impl Place {
    fn parse(s: &str) -> Result<Place, String> {
        match s {
            "cpu" => Ok(Place::Cpu),
            "cuda" => Ok(Place::Cuda),
            "auto" => Ok(Place::Auto),
            "emulate" | "host-emulation" => Ok(Place::Emulate),
            other => Err(format!("backend: expected 'cpu', 'cuda', 'auto' or 'emulate', got {other:?}")),
        }
    }
}

/// What a solver is built from.
pub struct Config<'a> {
    horizon: usize,
    opts: SolverOptions,
    params: &'a [(String, f64)],
    place: Place,
}

/// One model's solvers: the CPU solver for the whole batch (shared parameters), for per-problem
/// parameters a [`SolveEach`] rebuilt when the parameter rows change, and the GPU (or emulated)
/// kernels, built at the first batch that needs them.
trait Engine: Send {
    fn meta(&self) -> &Meta;
    /// Solves `batch` (problem `i` with parameters `rows[i * np..(i + 1) * np]` when given);
    /// returns the backend that ran it and why it was chosen.
    fn solve(&mut self, batch: &Batch<'_>, rows: Option<&[f64]>, sol: &mut Solution) -> Result<(BackendKind, String), BackendError>;
    /// One step of the dynamics from each row of `x` (B×nx), `u` (B×nu), with row `i`'s
    /// parameters when given: `x_next` (B×nx) and, with `jac`, the Jacobians `A` (B×nx×nx) and
    /// `B` (B×nx×nu).
    fn dynamics(&self, x: &[f64], u: &[f64], rows: Option<&[f64]>, jac: bool) -> Result<[Vec<f64>; 3], String>;
    /// The implicit gradients at `sol`, on the backend that solved it.
    fn backward(
        &mut self,
        batch: &Batch<'_>,
        rows: Option<&[f64]>,
        sol: &Solution,
        grads: (&[f64], &[f64]),
        out: &mut Gradients,
    ) -> Result<(), BackendError>;
}

/// The kernels on the GPU or in host emulation.
enum Gpu<M: Model> {
    Cuda(CudaSolver<M>),
    Emulated(EmulatedSolver<M>),
}

impl<M: Model> Gpu<M> {
    fn backend(&mut self) -> &mut dyn Backend {
        match self {
            Gpu::Cuda(g) => g,
            Gpu::Emulated(g) => g,
        }
    }
    fn set_params(&mut self, params: Vec<f64>) -> Result<(), BackendError> {
        match self {
            Gpu::Cuda(g) => g.set_params(params).map_err(BackendError::from),
            Gpu::Emulated(g) => g.set_params(params),
        }
    }
}

struct Device<M: Model> {
    gpu: Gpu<M>,
    capacity: usize,
    per_problem: bool,
}

struct Typed<M: Model> {
    meta: Meta,
    model: M,
    horizon: usize,
    opts: SolverOptions,
    shared: Solver<M>,
    each: Option<(Vec<f64>, SolveEach<M>)>,
    place: Place,
    /// For `cuda`/`auto`: the decision (made once; the driver does not come and go).
    choice: Option<(BackendKind, String)>,
    device: Option<Device<M>>,
}

impl<M: Model> Typed<M> {
    fn make(c: &Config<'_>) -> Result<Box<dyn Engine>, String> {
        let mut model = M::default();
        for (k, v) in c.params {
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
        let shared = Solver::new(model.clone(), c.horizon, c.opts.clone());
        Ok(Box::new(Typed {
            meta,
            model,
            horizon: c.horizon,
            opts: c.opts.clone(),
            shared,
            each: None,
            place: c.place,
            choice: None,
            device: None,
        }))
    }

    fn each(&mut self, rows: &[f64]) -> Result<&mut SolveEach<M>, BackendError> {
        if !self.each.as_ref().is_some_and(|(have, _)| have.as_slice() == rows) {
            let np = M::PARAM_NAMES.len();
            let mut models = Vec::with_capacity(rows.len() / np.max(1));
            for (i, row) in rows.chunks(np).enumerate() {
                let mut m = self.model.clone();
                for (name, v) in M::PARAM_NAMES.iter().zip(row) {
                    m.set_param(name, *v).map_err(|e| BackendError::Shape(format!("params[{i}]: {e}")))?;
                }
                models.push(m);
            }
            self.each = Some((rows.to_vec(), SolveEach::new(models, self.horizon, self.opts.clone())));
        }
        Ok(&mut self.each.as_mut().expect("built above").1)
    }

    fn needs(&self) -> Needs {
        Needs { kkt_tol: self.opts.tol.is_some(), ..Needs::default() }
    }

    /// Where a batch of `b` problems runs: the CPU (`None`) or the kernels, (re)built for at
    /// least `b` problems with per-problem parameters or not.
    fn place_batch(&mut self, b: usize, per_problem: bool) -> Result<(BackendKind, String), BackendError> {
        let (kind, reason) = match self.place {
            Place::Cpu => return Ok((BackendKind::Cpu, "asked for".into())),
            Place::Emulate => (BackendKind::HostEmulation, "asked for".to_string()),
            Place::Cuda | Place::Auto => {
                if self.choice.is_none() {
                    let pref = if self.place == Place::Cuda { Preference::Cuda } else { Preference::Auto };
                    let c = select::choose(pref, b, &self.needs())?;
                    self.choice = Some((c.kind, c.reason));
                }
                self.choice.clone().expect("chosen above")
            }
        };
        if kind == BackendKind::Cpu {
            return Ok((kind, reason));
        }
        if !self.device.as_ref().is_some_and(|d| d.capacity >= b && d.per_problem == per_problem) {
            self.device = None;
            let opts = KernelOptions::new(self.horizon, Precision::F64)
                .with_solver(self.opts.clone())
                .with_layout(select::layout_for(b, &self.needs()))
                .with_per_problem_params(per_problem);
            let gpu = if kind == BackendKind::Cuda {
                let mut g = CudaSolver::new(&self.model, b, &opts)?;
                g.prepare_backward()?;
                Gpu::Cuda(g)
            } else {
                Gpu::Emulated(EmulatedSolver::new(&self.model, b, &opts, HostBuild::Exact)?)
            };
            self.device = Some(Device { gpu, capacity: b, per_problem });
        }
        Ok((kind, reason))
    }

    /// The kernels, with this batch's parameters set.
    fn gpu(&mut self, rows: Option<&[f64]>) -> Result<&mut Gpu<M>, BackendError> {
        let d = self.device.as_mut().expect("placed on the device");
        if let Some(r) = rows {
            d.gpu.set_params(r.to_vec())?;
        }
        Ok(&mut d.gpu)
    }
}

impl<M: Model> Engine for Typed<M> {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn dynamics(&self, x: &[f64], u: &[f64], rows: Option<&[f64]>, jac: bool) -> Result<[Vec<f64>; 3], String> {
        let (nx, nu, np) = (M::NX, M::NU, M::PARAM_NAMES.len());
        let b = x.len() / nx;
        let mut next = vec![0.0; b * nx];
        let (mut a, mut bm) = if jac { (vec![0.0; b * nx * nx], vec![0.0; b * nx * nu]) } else { (Vec::new(), Vec::new()) };
        let mut own = self.model.clone();
        for i in 0..b {
            let model = match rows {
                None => &self.model,
                Some(r) => {
                    for (name, v) in M::PARAM_NAMES.iter().zip(&r[i * np..(i + 1) * np]) {
                        own.set_param(name, *v).map_err(|e| format!("params[{i}]: {e}"))?;
                    }
                    &own
                }
            };
            let (xi, ui, ni) = (&x[i * nx..(i + 1) * nx], &u[i * nu..(i + 1) * nu], &mut next[i * nx..(i + 1) * nx]);
            if jac {
                model.eval_linearize(xi, ui, ni, &mut a[i * nx * nx..(i + 1) * nx * nx], &mut bm[i * nx * nu..(i + 1) * nx * nu]);
            } else {
                model.eval_step(xi, ui, ni);
            }
        }
        Ok([next, a, bm])
    }

    fn solve(&mut self, batch: &Batch<'_>, rows: Option<&[f64]>, sol: &mut Solution) -> Result<(BackendKind, String), BackendError> {
        let placed = self.place_batch(batch.size, rows.is_some())?;
        if placed.0 == BackendKind::Cpu {
            match rows {
                None => self.shared.try_solve_into(batch, sol)?,
                Some(r) => self.each(r)?.try_solve_into(batch, sol)?,
            }
            return Ok(placed);
        }
        self.gpu(rows)?.backend().try_solve_into(batch, sol)?;
        // The kernels do not compute the KKT residual: check their controls on the CPU.
        sol.kkt_residual = match rows {
            None => self.shared.kkt_residuals(batch, &sol.u),
            Some(r) => self.each(r)?.kkt_residuals(batch, &sol.u),
        };
        sol.flag_non_finite_residuals();
        Ok(placed)
    }

    fn backward(
        &mut self,
        batch: &Batch<'_>,
        rows: Option<&[f64]>,
        sol: &Solution,
        (gx, gu): (&[f64], &[f64]),
        out: &mut Gradients,
    ) -> Result<(), BackendError> {
        let (kind, _) = self.place_batch(batch.size, rows.is_some())?;
        match (kind, rows) {
            (BackendKind::Cpu, None) => self.shared.try_backward_into(batch, sol, gx, gu, out),
            (BackendKind::Cpu, Some(r)) => self.each(r)?.try_backward_into(batch, sol, gx, gu, out),
            _ => self.gpu(rows)?.backend().try_backward_into(batch, sol, gx, gu, out),
        }
    }
}

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
    /// Per-problem parameters, B×n_params (`None`: the solver's shared parameters).
    params: Option<Vec<f64>>,
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
#[pyclass(module = "mpc_pyo3", frozen)]
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
#[pyclass(module = "mpc_pyo3")]
struct NativeSolver {
    /// Behind a mutex only for `Sync` (methods take `&mut self`, so it is never contended).
    engine: Mutex<Box<dyn Engine>>,
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
    let data = a.as_slice().map_err(|_| PyValueError::new_err(format!("{what}: not a C-contiguous float64 array")))?;
    // Large inputs in huge-page-advised memory (as numpy holds them): the solver streams them.
    Ok((shape, mpc_runtime::pages::copy_of(data)))
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

impl NativeSolver {
    fn engine(&mut self, what: &str) -> PyResult<&mut Box<dyn Engine>> {
        self.engine.get_mut().map_err(|_| PyRuntimeError::new_err(format!("{what}: an earlier call panicked")))
    }
}

#[pymethods]
impl NativeSolver {
    #[new]
    #[pyo3(signature = (model, horizon, *, params=None, method="ilqr", gradient="exact", max_iter=50, tol=None, eps=1e-7, line_search=None, grad_params=false, backend="cpu"))]
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
        backend: &str,
    ) -> PyResult<Self> {
        let place = Place::parse(backend).map_err(PyValueError::new_err)?;
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
        let entry = registry().iter().find(|e| e.name == model).ok_or_else(|| {
            PyValueError::new_err(format!("model: unknown model {model:?} (this module has: {})", models().join(", ")))
        })?;
        let engine = (entry.make)(&Config { horizon, opts, params: &params, place }).map_err(PyValueError::new_err)?;
        let meta = engine.meta().clone();
        Ok(NativeSolver { engine: Mutex::new(engine), meta, horizon, grad_params, last: None })
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
    #[pyo3(signature = (x_init, cost_hess, cost_lin, u_lower=None, u_upper=None, u_init=None, params=None))]
    #[allow(clippy::too_many_arguments)]
    fn solve<'py>(
        &mut self,
        py: Python<'py>,
        x_init: PyReadonlyArrayDyn<'py, f64>,
        cost_hess: PyReadonlyArrayDyn<'py, f64>,
        cost_lin: PyReadonlyArrayDyn<'py, f64>,
        u_lower: Option<PyReadonlyArrayDyn<'py, f64>>,
        u_upper: Option<PyReadonlyArrayDyn<'py, f64>>,
        u_init: Option<PyReadonlyArrayDyn<'py, f64>>,
        params: Option<PyReadonlyArrayDyn<'py, f64>>,
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
        let np = self.meta.param_names.len();
        let rows = match &params {
            None => None,
            Some(_) if np == 0 => {
                return Err(PyValueError::new_err(format!("params: the model {} has no parameters", self.meta.name)));
            }
            Some(a) => Some(take("params", a, &[Some(b), Some(np)], "(B, n_params)")?.1),
        };
        let mut last = Last {
            size: b,
            x_init: x0,
            cost_hess: cm,
            cost_lin: cv,
            lower,
            upper,
            u_init: u0,
            params: rows,
            sol: Solution::default(),
        };
        let engine = self.engine("solve")?;
        let mut sol = Solution::default();
        let done = py.detach(|| {
            let t0 = Instant::now();
            engine.solve(&last.batch(), last.params.as_deref(), &mut sol).map(|placed| (placed, t0.elapsed().as_secs_f64()))
        });
        let ((kind, reason), seconds) = done.map_err(backend_error)?;
        let out = PyDict::new(py);
        out.set_item("x", array(py, sol.x.clone(), &[b, t, nx])?)?;
        out.set_item("u", array(py, sol.u.clone(), &[b, t, nu])?)?;
        out.set_item("cost", array(py, sol.cost.clone(), &[b])?)?;
        out.set_item("iterations", array(py, sol.iterations.iter().map(|&i| i as i64).collect(), &[b])?)?;
        out.set_item("converged", array(py, sol.converged.clone(), &[b])?)?;
        out.set_item("kkt_residual", array(py, sol.kkt_residual.clone(), &[b])?)?;
        out.set_item("stop", sol.stop.iter().map(|s| s.name()).collect::<Vec<_>>())?;
        out.set_item("seconds", seconds)?;
        out.set_item("backend", kind.name())?;
        out.set_item("backend_reason", reason)?;
        last.sol = sol;
        let last = Arc::new(last);
        out.set_item("state", SolveState { inner: last.clone() })?;
        self.last = Some(last);
        Ok(out)
    }

    /// One step of the model's dynamics per row; see `mpc_rs.Solver.dynamics`.
    #[pyo3(signature = (x, u, params=None, jacobians=false))]
    fn dynamics<'py>(
        &mut self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'py, f64>,
        u: PyReadonlyArrayDyn<'py, f64>,
        params: Option<PyReadonlyArrayDyn<'py, f64>>,
        jacobians: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (nx, nu, np) = (self.meta.nx, self.meta.nu, self.meta.param_names.len());
        let (shape, xs) = take("x", &x, &[None, Some(nx)], "(B, nx)")?;
        let b = shape[0];
        let (_, us) = take("u", &u, &[Some(b), Some(nu)], "(B, nu)")?;
        let rows = match &params {
            None => None,
            Some(a) => Some(take("params", a, &[Some(b), Some(np)], "(B, n_params)")?.1),
        };
        let engine = self.engine("dynamics")?;
        let [next, a, bm] = engine.dynamics(&xs, &us, rows.as_deref(), jacobians).map_err(PyValueError::new_err)?;
        let out = PyDict::new(py);
        out.set_item("x_next", array(py, next, &[b, nx])?)?;
        if jacobians {
            out.set_item("A", array(py, a, &[b, nx, nx])?)?;
            out.set_item("B", array(py, bm, &[b, nx, nu])?)?;
        }
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
        let engine = self.engine("backward")?;
        let mut g = Gradients::default();
        let seconds = py.detach(|| {
            let t0 = Instant::now();
            engine
                .backward(&last.batch(), last.params.as_deref(), &last.sol, (&gx, &gu), &mut g)
                .map(|()| t0.elapsed().as_secs_f64())
        });
        let seconds = seconds.map_err(backend_error)?;
        let out = PyDict::new(py);
        out.set_item("C", array(py, g.cost_hess, &[b, t, n, n])?)?;
        out.set_item("c", array(py, g.cost_lin, &[b, t, n])?)?;
        out.set_item("x_init", array(py, g.x_init, &[b, nx])?)?;
        if self.grad_params {
            let np = self.meta.param_names.len();
            out.set_item("params", array(py, g.params, &[b, np])?)?;
        }
        out.set_item("status", g.status.iter().map(|s| grad_status(*s)).collect::<Vec<_>>())?;
        out.set_item("seconds", seconds)?;
        Ok(out)
    }
}

fn grad_status(s: GradStatus) -> &'static str {
    s.name()
}
