"""Batched differentiable MPC from the ``mpc`` model compiler, on NumPy arrays.

``Solver(model, horizon, ...)`` solves batches of box-constrained MPC problems

    min_{x, u}  sum_t  1/2 z_t^T C_t z_t + c_t^T z_t,   z_t = [x_t; u_t]
    s.t.        x_0 = x_init,  x_{t+1} = f(x_t, u_t),  u_lower <= u_t <= u_upper

with the CPU iLQR solver of ``mpc-runtime`` (Rust, generated analytic derivatives, the batch
spread over threads, the GIL released while solving), and differentiates the solution by the
implicit-function theorem: ``backward(dL/dx, dL/du)`` returns ``dL/dC``, ``dL/dc`` and
``dL/dx_init`` (and ``dL/dtheta`` of the model's parameters with ``grad_params=True``).

Arrays are batch-first (mpc.pytorch is time-major: ``x_init`` is the same, but transpose its
``C``, ``c``, ``x`` and ``u`` between axes 0 and 1). Inputs are converted to C-contiguous
float64; shapes are checked and a wrong one raises ``ValueError`` naming the argument and the
expected shape.

A user's own ``#[mpc_model]`` types are exported from their crate into a Python module of
their own with one line of Rust, ``mpc_pyo3::python_module!(my_robots, [Arm]);``, and solved
here with ``Solver("arm", horizon, module=my_robots)`` (see ``python/examples/ballbeam``).

Example::

    import numpy as np, mpc_rs
    s = mpc_rs.Solver("pendulum", horizon=20)
    B, n = 4, s.nx + s.nu
    C = np.tile(np.eye(n), (B, 20, 1, 1))
    sol = s.solve(np.random.randn(B, s.nx), C, np.zeros((B, 20, n)))
    grads = s.backward(np.ones_like(sol["x"]), np.zeros_like(sol["u"]))
"""

import numpy as np

from . import _native

__all__ = ["Solver", "models"]


def models():
    """Names of the bundled models."""
    return list(_native.models())


def _f64(name, a):
    if a is None:
        return None
    try:
        return np.ascontiguousarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: cannot be read as a float64 array ({e})") from None


class Solver:
    """A batched MPC solver for one model and horizon; workspaces are allocated once and reused.

    Parameters
    ----------
    model : str
        A bundled model (``mpc_rs.models()``).
    horizon : int
        Number of stages T (states x_0..x_{T-1}, controls u_0..u_{T-1}).
    params : dict, optional
        Model parameters by name (``Solver.params`` lists them with their defaults).
    method : {"ilqr", "ddp"}
        iLQR (Gauss-Newton model of the dynamics) or DDP (with the dynamics' second derivatives).
    gradient : {"exact", "gauss-newton"}
        Hessian of the implicit gradients: the Lagrangian's (exact) or the cost's (as mpc.pytorch).
    max_iter : int
        Iteration cap.
    tol : float, optional
        Stop when the KKT residual (max projected gradient) is at most ``tol``.
    eps : float
        Stop when the control update's norm falls below ``eps`` (when ``tol`` is not given).
    line_search : list of float, optional
        Step sizes tried per iteration, the best kept (default 1, 0.5, 0.25, 0.1).
    grad_params : bool
        Also return ``dL/dtheta`` (B, n_params) from ``backward``.
    backend : {"cpu", "cuda", "auto", "emulate"}
        Where batches are solved: the CPU solver; the GPU (CUDA kernels generated for the model,
        compiled by NVRTC at the first solve; an error naming the reason without a driver or
        GPU); the GPU when there is one, else the CPU (each result says which, and why); or the
        CUDA kernels built for the host and run by the GPU's launch code (no GPU needed, slow:
        a check of the GPU path). GPU solutions get their KKT residual from the CPU.
    module : module, optional
        The extension module that compiled ``model``: a user's crate's module made with
        ``mpc_pyo3::python_module!`` (default: this package's bundled models).
    """

    def __init__(self, model, horizon, *, params=None, method="ilqr", gradient="exact", max_iter=50, tol=None,
                 eps=1e-7, line_search=None, grad_params=False, backend="cpu", module=None):
        items = None if params is None else [(str(k), float(v)) for k, v in dict(params).items()]
        self.grad_params = bool(grad_params)
        native = _native if module is None else module
        if not hasattr(native, "NativeSolver"):
            raise ValueError(f"module: {native!r} is not a module made with mpc_pyo3::python_module!")
        self._s = native.NativeSolver(model, int(horizon), params=items, method=method, gradient=gradient,
                                       max_iter=int(max_iter), tol=None if tol is None else float(tol), eps=float(eps),
                                       line_search=None if line_search is None else [float(a) for a in line_search],
                                       grad_params=bool(grad_params), backend=str(backend))

    model = property(lambda self: self._s.model, doc="Model name.")
    nx = property(lambda self: self._s.nx, doc="State dimension.")
    nu = property(lambda self: self._s.nu, doc="Control dimension.")
    horizon = property(lambda self: self._s.horizon, doc="Horizon T.")
    params = property(lambda self: dict(self._s.params), doc="Model parameters (name -> value) in use.")
    control_bounds = property(lambda self: tuple(np.array(b) for b in self._s.control_bounds),
                              doc="The model's (lower, upper) control bounds, each (nu,).")

    @property
    def param_names(self):
        """The model's parameter names, in the column order of per-problem ``params``."""
        return list(self._s.params.keys())

    def param_rows(self, params, batch):
        """Per-problem parameters as a (B, n_params) float64 array: ``params`` is such an array,
        or a dict name -> scalar or (B,) array (parameters not named keep the solver's values)."""
        if params is None:
            return None
        if isinstance(params, dict):
            names = self.param_names
            unknown = sorted(set(params) - set(names))
            if unknown:
                raise ValueError(f"params: unknown parameter(s) {unknown} of {self.model} (known: {names})")
            rows = np.tile(np.array([self._s.params[k] for k in names], dtype=np.float64), (batch, 1))
            for j, k in enumerate(names):
                if k in params:
                    v = _f64(f"params[{k!r}]", params[k])
                    if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != batch):
                        raise ValueError(f"params[{k!r}]: expected a scalar or shape ({batch},), got {v.shape}")
                    rows[:, j] = v
            return rows
        return _f64("params", params)

    def solve(self, x_init, C, c, u_lower=None, u_upper=None, u_init=None, params=None):
        """Solve a batch of B problems.

        ``x_init`` (B, nx); ``C`` (B, T, n, n) symmetric, n = nx + nu; ``c`` (B, T, n);
        ``u_lower``/``u_upper`` (nu,) or (B, T, nu), the model's bounds when omitted;
        ``u_init`` (B, T, nu) warm start (zeros when omitted, projected onto the bounds);
        ``params``: per-problem model parameters, (B, n_params) in ``param_names`` order or a
        dict name -> (B,) (each problem then has its own dynamics; default: the solver's).

        Returns a dict: ``x`` (B, T, nx), ``u`` (B, T, nu), ``cost`` (B,), ``iterations`` (B,),
        ``converged`` (B,) bool, ``kkt_residual`` (B,), ``stop`` (list of B reasons),
        ``seconds`` (time inside the Rust solver, without the binding), ``backend`` (where it
        ran: "cpu", "cuda" or "host-emulation") with ``backend_reason``, and ``state`` (this
        solve, for ``backward(..., state=...)``).
        """
        x_init = _f64("x_init", x_init)
        batch = x_init.shape[0] if x_init.ndim >= 1 else 0
        return self._s.solve(x_init, _f64("C", C), _f64("c", c), _f64("u_lower", u_lower), _f64("u_upper", u_upper),
                             _f64("u_init", u_init), self.param_rows(params, batch))

    def dynamics(self, x, u, params=None, jacobians=False):
        """One step of the model's discrete dynamics per row (the generated code the solver uses):
        ``x`` (B, nx), ``u`` (B, nu), ``params`` per row as in ``solve``. Returns a dict with
        ``x_next`` (B, nx) and, with ``jacobians=True``, ``A`` = d x_next / dx (B, nx, nx) and
        ``B`` = d x_next / du (B, nx, nu)."""
        x = _f64("x", x)
        batch = x.shape[0] if x.ndim >= 1 else 0
        return self._s.dynamics(x, _f64("u", u), self.param_rows(params, batch), bool(jacobians))

    def backward(self, grad_x, grad_u, state=None):
        """Gradients of a loss L at a solution, given ``dL/dx`` (B, T, nx) and ``dL/du`` (B, T, nu).

        ``state``: the ``state`` entry of the ``solve`` result to differentiate (the last solve
        when omitted).

        Returns a dict: ``C`` (B, T, n, n), ``c`` (B, T, n), ``x_init`` (B, nx), ``params``
        (B, n_params, with ``grad_params=True``, at each problem's parameters), ``status``
        (list of B: "ok", or why a problem's gradients were masked to zero) and ``seconds``
        (time inside the Rust backward pass).
        """
        return self._s.backward(_f64("grad_x", grad_x), _f64("grad_u", grad_u), state)
