"""The PyTorch layer (runs where torch is installed: ``scripts/python-extras.sh``, which CI runs,
installs it into a venv of its own): gradcheck in float64, equality with the NumPy API, float32,
and independent forward calls differentiated out of order."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mpc_rs  # noqa: E402
from mpc_rs.torch import MPC  # noqa: E402


def problem(b=2, t=6, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = 4
    C = torch.diag(torch.tensor([0.1, 0.1, 0.1, 1.0], dtype=dtype)).expand(b, t, n, n).clone()
    c = 0.1 * torch.randn(b, t, n, generator=g, dtype=dtype)
    th = torch.rand(b, generator=g, dtype=dtype) - 0.5
    x0 = torch.stack([torch.cos(th), torch.sin(th), 0.2 * torch.ones(b, dtype=dtype)], dim=1)
    return x0, C, c


def test_gradcheck_float64():
    layer = MPC("pendulum", 6, tol=1e-13, max_iter=500, gradient="exact")
    x0, C, c = problem()
    x0.requires_grad_(True)
    c.requires_grad_(True)
    S = C.clone().requires_grad_(True)

    def f(x0_, S_, c_):
        # C enters through its symmetric part (the solver's dL/dC is the symmetric gradient).
        x, u = layer(x0_, 0.5 * (S_ + S_.transpose(-1, -2)), c_)
        return x, u

    assert torch.autograd.gradcheck(f, (x0, S, c), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_layer_equals_numpy_api_and_keeps_dtype():
    x0, C, c = problem(b=3, t=5, seed=1)
    layer = MPC("pendulum", 5, tol=1e-12, max_iter=500)
    x, u = layer(x0, C, c)
    ref = mpc_rs.Solver("pendulum", 5, tol=1e-12, max_iter=500).solve(x0.numpy(), C.numpy(), c.numpy())
    assert np.array_equal(x.numpy(), ref["x"]) and np.array_equal(u.numpy(), ref["u"])
    x32, u32 = layer(x0.float(), C.float(), c.float())
    assert x32.dtype == torch.float32 and u32.dtype == torch.float32
    assert torch.allclose(u32.double(), u, atol=1e-5)


def test_calls_are_differentiated_independently():
    layer = MPC("pendulum", 5, tol=1e-12, max_iter=500)
    xa, Ca, ca = problem(t=5, seed=2)
    xb, Cb, cb = problem(t=5, seed=3)
    ca.requires_grad_(True)
    cb.requires_grad_(True)
    _, ua = layer(xa, Ca, ca)
    _, ub = layer(xb, Cb, cb)
    # Backward of the first call after the second forward: its own solution is used.
    ua.sum().backward()
    ga = ca.grad.clone()
    ca.grad = None
    _, ua2 = layer(xa, Ca, ca)
    ua2.sum().backward()
    assert torch.equal(ga, ca.grad)
    ub.sum().backward()
    assert cb.grad is not None and not torch.equal(cb.grad, ga)


def test_gradcheck_per_problem_parameters_of_a_users_model():
    """dL/dθ through the layer for a model exported from a user's crate (ballbeam)."""
    ballbeam = pytest.importorskip("ballbeam")
    t = 8
    layer = MPC("ball_beam", t, module=ballbeam, tol=1e-13, max_iter=500, gradient="exact", grad_params=True)
    names = layer.solver.param_names
    base = torch.tensor([layer.solver.params[k] for k in names], dtype=torch.float64)
    params = base.expand(2, -1).clone()
    params[:, names.index("m")] = torch.tensor([0.1, 0.14], dtype=torch.float64)
    params.requires_grad_(True)
    C = torch.diag(torch.tensor([20.0, 1.0, 5.0, 0.5, 1.0], dtype=torch.float64)).expand(2, t, 5, 5).clone()
    c = 0.05 * torch.randn(2, t, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x0 = torch.tensor([[0.2, 0.0, 0.05, 0.0], [-0.25, 0.0, -0.02, 0.0]], dtype=torch.float64, requires_grad=True)

    def f(x0_, p_):
        return layer(x0_, C, c, params=p_)

    assert torch.autograd.gradcheck(f, (x0, params), eps=1e-6, atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match="grad_params=True"):
        MPC("ball_beam", t, module=ballbeam)(x0, C, c, params=params)


def test_fastmpc_drop_in_returns_the_terminal_state_with_its_gradient():
    from mpc_rs.torch import FastMPC

    t = 5
    mpc = FastMPC(t, model="pendulum", max_iter=500, tol=1e-13, gradient="exact")
    x0, C, c = problem(b=2, t=t, seed=6)
    X, U = mpc(x0, C, c)
    assert X.shape == (2, t + 1, 3) and U.shape == (2, t, 1)
    ref = mpc_rs.Solver("pendulum", t, max_iter=500, tol=1e-13).solve(x0.numpy(), C.numpy(), c.numpy())
    assert np.array_equal(X[:, :t].numpy(), ref["x"]) and np.array_equal(U.numpy(), ref["u"])
    step = mpc.solver.dynamics(ref["x"][:, -1], ref["u"][:, -1])
    assert np.array_equal(X[:, t].numpy(), step["x_next"])
    x0.requires_grad_(True)
    c.requires_grad_(True)
    # The terminal state's gradient is what this checks: weight it heavily.
    w = torch.tensor([1.0] * t + [10.0], dtype=torch.float64)[None, :, None]

    def f(x0_, c_):
        X_, U_ = mpc(x0_, C, c_)
        return (w * X_).sum(dim=(1, 2)), U_

    assert torch.autograd.gradcheck(f, (x0, c), eps=1e-6, atol=1e-6, rtol=1e-4)

