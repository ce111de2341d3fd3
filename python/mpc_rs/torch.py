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

CA-AC-MPC's ``FastMPC`` call (batch-first ``x0 [B, nx]``, ``C [B, T, n, n]``, ``c [B, T, n]``)
maps one to one onto ``layer(x0, C, c)``.
"""

import torch

from . import Solver

__all__ = ["MPC", "MpcFunction"]


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
