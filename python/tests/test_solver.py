"""The Python bindings against the project's own answers and against finite differences.

* Every fixture of ``tests/fixtures`` with a bundled model is solved through ``mpc_rs`` and
  compared with what ``mpc solve`` writes for the same problem (the same Rust solver behind both:
  equal to 1e-12), solution and gradients.
* Implicit gradients against central finite differences of re-solved problems.
* Bad input raises ValueError naming the argument and the expected shape.
"""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

import mpc_rs

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"


def mpc_binary():
    """The `mpc` CLI: $MPC_BIN, else the debug or release build of this checkout."""
    if os.environ.get("MPC_BIN"):
        return os.environ["MPC_BIN"]
    for profile in ("debug", "release"):
        p = REPO / "target" / profile / "mpc"
        if p.exists():
            return str(p)
    pytest.fail("no mpc binary: build it (cargo build) or set MPC_BIN")


def fixture_names():
    names = []
    for p in sorted(FIXTURES.glob("*.problem.json")):
        doc = json.loads(p.read_text())
        if doc.get("model") in mpc_rs.models() and "params_per_problem" not in doc:
            names.append(p.name[: -len(".problem.json")])
    return names


def solver_for(doc, **extra):
    settings = dict(doc.get("solver", {}))
    kwargs = {}
    for key, arg in (("max_iters", "max_iter"), ("eps", "eps"), ("tol", "tol"), ("method", "method"),
                     ("gradient", "gradient"), ("line_search", "line_search")):
        if key in settings:
            kwargs[arg] = settings[key]
    kwargs.update(extra)
    return mpc_rs.Solver(doc["model"], doc["horizon"], params=doc.get("params"), **kwargs)


def close(a, b, what, rtol=1e-12):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} vs {b.shape}"
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= rtol * scale, f"{what}: max difference {err:.3e} (scale {scale:.3e})"


def test_fixtures_are_found():
    assert len(fixture_names()) >= 6, fixture_names()


@pytest.mark.parametrize("name", fixture_names())
def test_fixture_equals_mpc_solve(name, tmp_path):
    problem = FIXTURES / f"{name}.problem.json"
    doc = json.loads(problem.read_text())
    out = tmp_path / "solution.json"
    run = subprocess.run([mpc_binary(), "solve", "--problem", str(problem), "--out", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    ref = json.loads(out.read_text())

    s = solver_for(doc)
    lower = doc.get("u_lower")
    upper = doc.get("u_upper")
    sol = s.solve(doc["x_init"], doc["C"], doc["c"], u_lower=lower, u_upper=upper, u_init=doc.get("u_init"))
    close(sol["x"], ref["x"], f"{name}: x")
    close(sol["u"], ref["u"], f"{name}: u")
    close(sol["cost"], ref["cost"], f"{name}: cost")
    assert list(sol["iterations"]) == ref["iterations"], name
    assert list(sol["converged"]) == ref["converged"], name
    if "grad_x" in doc:
        g = s.backward(doc["grad_x"], doc["grad_u"])
        close(g["C"], ref["grad_C"], f"{name}: dL/dC")
        close(g["c"], ref["grad_c"], f"{name}: dL/dc")
        close(g["x_init"], ref["grad_x_init"], f"{name}: dL/dx_init")


def pendulum_batch(rng, b=3, t=12):
    s = mpc_rs.Solver("pendulum", t, tol=1e-12, max_iter=500, gradient="exact")
    n = s.nx + s.nu
    q = np.diag([0.1, 0.1, 0.1, 1.0])
    cm = np.tile(q, (b, t, 1, 1))
    cv = 0.1 * rng.standard_normal((b, t, n))
    theta = rng.uniform(-0.5, 0.5, b)
    x0 = np.stack([np.cos(theta), np.sin(theta), rng.uniform(-0.3, 0.3, b)], axis=1)
    return s, x0, cm, cv


def test_gradients_match_finite_differences_of_resolved_problems():
    rng = np.random.default_rng(0)
    s, x0, cm, cv = pendulum_batch(rng)
    wx = rng.standard_normal((x0.shape[0], s.horizon, s.nx))
    wu = rng.standard_normal((x0.shape[0], s.horizon, s.nu))

    def loss(x0_, cv_):
        sol = s.solve(x0_, cm, cv_)
        assert all(sol["converged"]), sol["stop"]
        return float(np.sum(wx * sol["x"]) + np.sum(wu * sol["u"]))

    sol = s.solve(x0, cm, cv)
    assert all(sol["converged"])
    # The box is wide enough here that no bound is active: the solution is smooth in the data.
    assert np.max(np.abs(sol["u"])) < 1.9
    g = s.backward(wx, wu)
    h = 1e-6
    for (i, t, j) in [(0, 0, 0), (1, 5, 2), (2, 11, 3), (0, 3, 1)]:
        d = np.zeros_like(cv)
        d[i, t, j] = h
        fd = (loss(x0, cv + d) - loss(x0, cv - d)) / (2 * h)
        assert abs(g["c"][i, t, j] - fd) <= 1e-5 * max(1.0, abs(fd)), (i, t, j, g["c"][i, t, j], fd)
    for (i, j) in [(0, 2), (1, 1), (2, 0)]:
        d = np.zeros_like(x0)
        d[i, j] = h
        fd = (loss(x0 + d, cv) - loss(x0 - d, cv)) / (2 * h)
        assert abs(g["x_init"][i, j] - fd) <= 1e-5 * max(1.0, abs(fd)), (i, j, g["x_init"][i, j], fd)
    # dL/dC is the symmetric outer-product form of dL/dc (module docs of the runtime's backward).
    z = np.concatenate([sol["x"], sol["u"]], axis=2)
    sym = 0.5 * (g["c"][..., :, None] * z[..., None, :] + z[..., :, None] * g["c"][..., None, :])
    close(g["C"], sym, "dL/dC", rtol=1e-12)


def test_parameter_gradients():
    rng = np.random.default_rng(1)
    _, x0, cm, cv = pendulum_batch(rng, b=2, t=8)
    s = mpc_rs.Solver("pendulum", 8, tol=1e-12, max_iter=500, gradient="exact", grad_params=True)
    sol = s.solve(x0, cm, cv)
    wx = rng.standard_normal(sol["x"].shape)
    wu = rng.standard_normal(sol["u"].shape)
    g = s.backward(wx, wu)
    names = list(s.params)
    k = names.index("m")
    h = 1e-6

    def loss(m):
        p = dict(s.params)
        p["m"] = m
        s2 = mpc_rs.Solver("pendulum", 8, params=p, tol=1e-12, max_iter=500)
        r = s2.solve(x0, cm, cv)
        return np.sum(wx * r["x"], axis=(1, 2)) + np.sum(wu * r["u"], axis=(1, 2))

    m0 = s.params["m"]
    fd = (loss(m0 + h) - loss(m0 - h)) / (2 * h)
    assert g["params"].shape == (2, len(names))
    assert np.all(np.abs(g["params"][:, k] - fd) <= 1e-5 * np.maximum(1.0, np.abs(fd))), (g["params"][:, k], fd)


def test_bad_input_names_the_argument_and_shape():
    s = mpc_rs.Solver("cartpole", 5)
    n = s.nx + s.nu
    x0 = np.zeros((2, s.nx))
    cm = np.tile(np.eye(n), (2, 5, 1, 1))
    cv = np.zeros((2, 5, n))
    with pytest.raises(ValueError, match=rf"x_init: expected shape \(B, {s.nx}\)"):
        s.solve(np.zeros((2, s.nx + 1)), cm, cv)
    with pytest.raises(ValueError, match=rf"C: expected shape \(2, 5, {n}, {n}\)"):
        s.solve(x0, cm[:, :4], cv)
    with pytest.raises(ValueError, match=r"c: expected shape"):
        s.solve(x0, cm, cv[:1])
    with pytest.raises(ValueError, match=r"u_lower: expected shape"):
        s.solve(x0, cm, cv, u_lower=np.zeros(3))
    with pytest.raises(ValueError, match=r"C: cannot be read as a float64 array"):
        s.solve(x0, "not an array", cv)
    with pytest.raises(RuntimeError, match="call solve first"):
        s.backward(np.zeros((2, 5, s.nx)), np.zeros((2, 5, s.nu)))
    s.solve(x0, cm, cv)
    with pytest.raises(ValueError, match=rf"grad_u: expected shape \(2, 5, {s.nu}\)"):
        s.backward(np.zeros((2, 5, s.nx)), np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="unknown model"):
        mpc_rs.Solver("submarine", 5)
    with pytest.raises(ValueError, match="params: "):
        mpc_rs.Solver("cartpole", 5, params={"no_such_param": 1.0})
    with pytest.raises(ValueError, match="method: expected"):
        mpc_rs.Solver("cartpole", 5, method="sqp")


def test_float32_and_fortran_inputs_are_converted():
    s = mpc_rs.Solver("pendulum", 6)
    n = s.nx + s.nu
    x0 = np.array([[1.0, 0.0, 0.2]], dtype=np.float32)
    cm = np.asfortranarray(np.tile(np.eye(n), (1, 6, 1, 1)))
    a = s.solve(x0, cm, np.zeros((1, 6, n)))
    b = s.solve(x0.astype(np.float64), np.ascontiguousarray(cm), np.zeros((1, 6, n)))
    assert np.array_equal(a["u"], b["u"])


def test_the_gil_is_released_while_solving():
    """A Python thread keeps running while another thread is inside `solve`: it counts at a
    good fraction of its unhindered rate (were the GIL held, it would stand still for the whole
    solve: < 3 % of the rate over a solve of >= 0.2 s, Python's switch interval being 5 ms)."""
    import threading
    import time

    def counted_while(event_setter):
        ev = threading.Event()
        n = 0
        th = threading.Thread(target=event_setter, args=(ev,))
        th.start()
        while not ev.is_set():
            n += 1
        th.join()
        return n

    t = 2000
    while True:
        s = mpc_rs.Solver("pendulum", t, max_iter=5, eps=1e-300)
        x0 = np.array([[np.cos(2.0), np.sin(2.0), 0.0]])
        cm = np.tile(np.diag([1.0, 1.0, 0.1, 0.01]), (1, t, 1, 1))
        cv = np.zeros((1, t, 4))
        t0 = time.perf_counter()
        s.solve(x0, cm, cv)  # B = 1 runs on the calling thread alone
        d = time.perf_counter() - t0
        if d >= 0.2 or t >= 512_000:
            break
        t *= 2

    def solve(ev):
        s.solve(x0, cm, cv)
        ev.set()

    def sleep(ev):
        time.sleep(d)
        ev.set()

    during_solve = counted_while(solve)
    unhindered = counted_while(sleep)
    assert d >= 0.2, d
    assert during_solve >= 0.1 * unhindered, (during_solve, unhindered, d)


def _equal_to_the_cpu_solver(backend, label, rtol):
    """Solutions and all gradients of `backend` against the CPU solver (pendulum, per-problem
    parameters, with and without a KKT tolerance)."""
    rng = np.random.default_rng(5)
    _, x0, cm, cv = pendulum_batch(rng, b=3, t=8)
    wx, wu = rng.standard_normal((3, 8, 3)), rng.standard_normal((3, 8, 1))
    for kw in ({}, {"tol": 1e-10, "max_iter": 100}):
        cpu = mpc_rs.Solver("pendulum", 8, grad_params=True, **kw)
        dev = mpc_rs.Solver("pendulum", 8, grad_params=True, backend=backend, **kw)
        for params in (None, {"m": np.array([0.8, 1.0, 1.3])}):
            a, b = cpu.solve(x0, cm, cv, params=params), dev.solve(x0, cm, cv, params=params)
            assert a["backend"] == "cpu" and b["backend"] == label, (a["backend"], b["backend"])
            for k in ("x", "u", "cost"):
                close(b[k], a[k], f"{kw} {params}: {k}", rtol=rtol)
            assert list(b["converged"]) == list(a["converged"]) and list(b["iterations"]) == list(a["iterations"])
            close(b["kkt_residual"], a["kkt_residual"], "kkt", rtol=rtol)
            ga, gb = cpu.backward(wx, wu), dev.backward(wx, wu)
            for k in ("C", "c", "x_init", "params"):
                close(gb[k], ga[k], f"{kw} {params}: dL/d{k}", rtol=rtol)


def test_cuda_kernels_in_host_emulation_equal_the_cpu_solver():
    """backend="emulate": the model's generated CUDA kernels, built for the host and run by the
    GPU's launch orchestration, through the same Python API; equal to the CPU solver (double)."""
    _equal_to_the_cpu_solver("emulate", "host-emulation", 1e-9)


def test_cuda_backend_on_a_gpu_equals_the_cpu_solver():
    """backend="cuda" on a machine with a GPU (run by scripts/gpu-checks.sh): the same checks as
    the host emulation, to 1e-6 (NVRTC contracts multiply-adds into FMAs)."""
    probe = mpc_rs.Solver("pendulum", 2, backend="auto")
    n = probe.nx + probe.nu
    r = probe.solve(np.array([[1.0, 0.0, 0.1]]), np.tile(np.eye(n), (1, 2, 1, 1)), np.zeros((1, 2, n)))
    if r["backend"] != "cuda":
        pytest.skip(f"no GPU: {r['backend_reason']}")
    _equal_to_the_cpu_solver("cuda", "cuda", 1e-6)


def test_cuda_backend_without_a_gpu():
    from mpc_rs import _native

    s = mpc_rs.Solver("pendulum", 5, backend="auto")
    n = s.nx + s.nu
    x0, cm, cv = np.array([[1.0, 0.0, 0.1]]), np.tile(np.eye(n), (1, 5, 1, 1)), np.zeros((1, 5, n))
    r = s.solve(x0, cm, cv)
    if r["backend"] == "cpu":  # this machine has no usable CUDA driver or GPU
        assert r["backend_reason"], r
        with pytest.raises(RuntimeError, match=r"\S"):
            mpc_rs.Solver("pendulum", 5, backend="cuda").solve(x0, cm, cv)
    else:
        assert r["backend"] == "cuda"
    with pytest.raises(ValueError, match="backend: expected"):
        _native.NativeSolver("pendulum", 5, backend="tpu")


def test_dynamics_jacobians_match_finite_differences():
    s = mpc_rs.Solver("quadrotor", 3)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 10))
    x[:, 3:7] /= np.linalg.norm(x[:, 3:7], axis=1, keepdims=True)
    u = np.array([[7.0, 0.1, -0.2, 0.3], [9.0, 0.0, 0.5, -0.1]])
    d = s.dynamics(x, u, jacobians=True)
    h = 1e-6
    for j in range(10):
        e = np.zeros_like(x)
        e[:, j] = h
        fd = (s.dynamics(x + e, u)["x_next"] - s.dynamics(x - e, u)["x_next"]) / (2 * h)
        assert np.allclose(d["A"][:, :, j], fd, atol=1e-6), j
    for j in range(4):
        e = np.zeros_like(u)
        e[:, j] = h
        fd = (s.dynamics(x, u + e)["x_next"] - s.dynamics(x, u - e)["x_next"]) / (2 * h)
        assert np.allclose(d["B"][:, :, j], fd, atol=1e-6), j
