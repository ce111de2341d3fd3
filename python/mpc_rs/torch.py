"""The MPC as a PyTorch layer (requires ``torch``; ``import mpc_rs.torch``).

``MPC(model, horizon, **solver_options)(x_init, C, c, u_lower=None, u_upper=None, u_init=None)``
returns ``(x, u)``, batch-first: ``x_init`` (B, nx), ``C`` (B, T, n, n), ``c`` (B, T, n) →
``x`` (B, T, nx), ``u`` (B, T, nu). The backward pass is the solver's implicit gradient
(``gradient="exact"`` by default, or ``"gauss-newton"`` as mpc.pytorch and CA-AC-MPC), giving
``dL/dx_init``, ``dL/dC`` (symmetric) and ``dL/dc``, and ``dL/dparams`` for per-problem model
parameters ``params`` (B, n_params) when the layer is built with ``grad_params=True``; bounds and
warm start get no gradient. A user's own model: ``MPC("arm", T, module=my_robots)``.

float64 and float32 tensors are accepted (the solve runs in float64; results come back in the
input's dtype), on any device (the solve runs on the CPU; results come back on the input's
device). Each call keeps its own solution for its backward pass, so several forward calls may be
differentiated in any order.

From mpc.pytorch (time-major ``(T, B, ...)``)::

    x, u = layer(x_init, C.transpose(0, 1), c.transpose(0, 1))
    x, u = x.transpose(0, 1), u.transpose(0, 1)

CA-AC-MPC's ``FastMPC`` call (batch-first ``x0 [B, nx]``, ``C [B, T, n, n]``, ``c [B, T, n]``
-> ``X [B, T+1, nx]``, ``U [B, T, nu]``) is ``FastMPC(horizon)(x0, C, c, u_init=...)``: the same
solve, plus the state ``X[:, T] = f(x_{T-1}, u_{T-1})`` after the last control, with its
gradient (through the model's Jacobians at the solution).
"""

import numpy as np
import torch

from . import Solver

__all__ = ["MPC", "MpcFunction", "FastMPC"]


def _np(t):
    return None if t is None else t.detach().to(device="cpu", dtype=torch.float64).contiguous().numpy()


class MpcFunction(torch.autograd.Function):
    """``MpcFunction.apply(solver, x_init, C, c, u_lower, u_upper, u_init, params) -> (x, u)``."""

    @staticmethod
    def forward(ctx, solver, x_init, C, c, u_lower=None, u_upper=None, u_init=None, params=None):
        if params is not None and params.requires_grad and not solver.grad_params:
            raise ValueError("params: requires grad, but the layer was built without grad_params=True")
        sol = solver.solve(_np(x_init), _np(C), _np(c), _np(u_lower), _np(u_upper), _np(u_init), _np(params))
        ctx.with_params = params is not None
        ctx.solver = solver
        ctx.state = sol["state"]
        ctx.like = (x_init.dtype, x_init.device)
        dtype, device = ctx.like
        x = torch.from_numpy(sol["x"]).to(device=device, dtype=dtype)
        u = torch.from_numpy(sol["u"]).to(device=device, dtype=dtype)
        return x, u

    @staticmethod
    def backward(ctx, grad_x, grad_u):
        dtype, device = ctx.like
        # (Unused outputs arrive as zero tensors: autograd materialises them.)
        g = ctx.solver.backward(_np(grad_x), _np(grad_u), state=ctx.state)

        def back(a):
            return torch.from_numpy(a).to(device=device, dtype=dtype)

        gp = back(g["params"]) if ctx.with_params and "params" in g else None
        return None, back(g["x_init"]), back(g["C"]), back(g["c"]), None, None, None, gp


class MPC(torch.nn.Module):
    """A batched MPC layer; see the module documentation. Options are ``mpc_rs.Solver``'s."""

    def __init__(self, model, horizon, **solver_options):
        super().__init__()
        self.solver = Solver(model, horizon, **solver_options)

    def forward(self, x_init, C, c, u_lower=None, u_upper=None, u_init=None, params=None):
        return MpcFunction.apply(self.solver, x_init, C, c, u_lower, u_upper, u_init, params)


class _FastMpcFunction(torch.autograd.Function):
    """``(solver, x0, C, c, u_init) -> (X [B, T+1, nx], U [B, T, nu])``."""

    @staticmethod
    def forward(ctx, solver, x0, C, c, u_init=None):
        sol = solver.solve(_np(x0), _np(C), _np(c), None, None, _np(u_init))
        step = solver.dynamics(sol["x"][:, -1], sol["u"][:, -1], jacobians=True)
        ctx.solver, ctx.state = solver, sol["state"]
        ctx.jac = (step["A"], step["B"])
        ctx.like = (x0.dtype, x0.device)
        dtype, device = ctx.like
        X = torch.from_numpy(np.concatenate([sol["x"], step["x_next"][:, None]], axis=1)).to(device=device, dtype=dtype)
        U = torch.from_numpy(sol["u"]).to(device=device, dtype=dtype)
        return X, U

    @staticmethod
    def backward(ctx, grad_X, grad_U):
        dtype, device = ctx.like
        gX, gU = _np(grad_X), _np(grad_U).copy()
        A, B = ctx.jac
        # X_T = f(x_{T-1}, u_{T-1}): its gradient joins those of the last solution stage.
        gx = gX[:, :-1].copy()
        gx[:, -1] += np.einsum("bij,bi->bj", A, gX[:, -1])
        gU[:, -1] += np.einsum("bij,bi->bj", B, gX[:, -1])
        g = ctx.solver.backward(gx, gU, state=ctx.state)

        def back(a):
            return torch.from_numpy(a).to(device=device, dtype=dtype)

        return None, back(g["x_init"]), back(g["C"]), back(g["c"]), None


class FastMPC(torch.nn.Module):
    """CA-AC-MPC's ``FastMPC`` call on this solver (see the module documentation):
    ``FastMPC(horizon, model="quadrotor", max_iter=5, gradient="gauss-newton", **options)`` and
    ``X, U = mpc(x0, C, c, u_init=None)`` with ``X`` (B, T+1, nx) and ``U`` (B, T, nu); the
    control bounds are the model's (the quadrotor's are CA-AC-MPC's). Differences: the solve is
    in float64 (results in the input's dtype) and has no ``reg_eps`` regularisation of ``Q_uu``
    (it solves the box-constrained problem itself, K iterations of iLQR with a line search)."""

    def __init__(self, horizon, model="quadrotor", max_iter=5, gradient="gauss-newton", **solver_options):
        super().__init__()
        solver_options.setdefault("eps", 1e-12)
        self.solver = Solver(model, horizon, max_iter=max_iter, gradient=gradient, **solver_options)

    def forward(self, x0, C, c, u_init=None):
        return _FastMpcFunction.apply(self.solver, x0, C, c, u_init)
