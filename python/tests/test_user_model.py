"""A model nobody bundled, exported from a user's crate (``python/examples/ballbeam``, one line
of ``mpc_pyo3::python_module!``), solved and differentiated from Python.

The checks do not trust the generated code: the dynamics are re-implemented here in NumPy (RK4
of the textbook ball-and-beam equations), the solution is rolled out through them, its
optimality is checked with this file's own finite differences of the cost, and the gradients
(with respect to the cost, the initial state and per-problem model parameters) against finite
differences of re-solved problems.
"""

import numpy as np
import pytest

import ballbeam
import mpc_rs

T = 30
DT = 0.05
DEFAULTS = {"m": 0.11, "r_ball": 0.015, "j_beam": 0.05, "g": 9.81, "damping": 0.02, "dt": DT}


def deriv(x, u, p):
    r, dr, th, dth = x
    m, rb, jb, g, b = p["m"], p["r_ball"], p["j_beam"], p["g"], p["damping"]
    jball = 0.4 * m * rb * rb
    ddr = (m * r * dth * dth - m * g * np.sin(th)) / (jball / (rb * rb) + m)
    ddth = (u[0] - 2 * m * r * dr * dth - m * g * r * np.cos(th) - b * dth) / (m * r * r + jb)
    return np.array([dr, ddr, dth, ddth])


def step(x, u, p):
    h = p["dt"]
    k1 = deriv(x, u, p)
    k2 = deriv(x + 0.5 * h * k1, u, p)
    k3 = deriv(x + 0.5 * h * k2, u, p)
    k4 = deriv(x + h * k3, u, p)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def rollout(x0, us, p):
    xs = [np.asarray(x0, dtype=float)]
    for u in us[:-1]:
        xs.append(step(xs[-1], u, p))
    return np.array(xs)


def cost(x0, us, cm, cv, p):
    xs = rollout(x0, us, p)
    z = np.concatenate([xs, us], axis=1)
    return float(0.5 * np.einsum("ti,tij,tj->", z, cm, z) + np.einsum("ti,ti->", cv, z))


def problem(b=3, seed=0):
    rng = np.random.default_rng(seed)
    q = np.diag([20.0, 1.0, 5.0, 0.5, 1.0])
    cm = np.tile(q, (b, T, 1, 1))
    cv = 0.05 * rng.standard_normal((b, T, 5))
    x0 = np.stack([rng.uniform(-0.3, 0.3, b), np.zeros(b), rng.uniform(-0.1, 0.1, b), np.zeros(b)], axis=1)
    return x0, cm, cv


def test_the_module_offers_the_users_model():
    assert ballbeam.models() == ["ball_beam"]
    s = mpc_rs.Solver("ball_beam", T, module=ballbeam)
    assert (s.nx, s.nu, s.horizon) == (4, 1, T)
    assert s.params == DEFAULTS
    lo, hi = s.control_bounds
    assert list(lo) == [-2.0] and list(hi) == [2.0]
    with pytest.raises(ValueError, match=r"unknown model \"pendulum\" \(this module has: ball_beam\)"):
        mpc_rs.Solver("pendulum", T, module=ballbeam)
    with pytest.raises(ValueError, match="module: "):
        mpc_rs.Solver("ball_beam", T, module=np)


def test_solution_is_a_rollout_and_optimal_by_finite_differences():
    x0, cm, cv = problem()
    s = mpc_rs.Solver("ball_beam", T, module=ballbeam, tol=1e-10, max_iter=200)
    sol = s.solve(x0, cm, cv)
    assert all(sol["converged"]), sol["stop"]
    assert np.all(sol["kkt_residual"] <= 1e-10)
    h = 1e-6
    for i in range(x0.shape[0]):
        us = sol["u"][i]
        np.testing.assert_allclose(sol["x"][i], rollout(x0[i], us, DEFAULTS), rtol=0, atol=1e-10)
        assert abs(sol["cost"][i] - cost(x0[i], us, cm[i], cv[i], DEFAULTS)) <= 1e-10 * max(1, abs(sol["cost"][i]))
        # Projected gradient of this file's cost: zero in free directions, pushing outwards at
        # an active bound.
        for t in range(T):
            d = np.zeros_like(us)
            d[t, 0] = h
            g = (cost(x0[i], us + d, cm[i], cv[i], DEFAULTS) - cost(x0[i], us - d, cm[i], cv[i], DEFAULTS)) / (2 * h)
            u = us[t, 0]
            if -2.0 + 1e-9 < u < 2.0 - 1e-9:
                assert abs(g) <= 1e-6, (i, t, u, g)
            else:
                assert g * np.sign(u) <= 1e-6, (i, t, u, g)


def test_per_problem_parameters_equal_separate_solves():
    x0, cm, cv = problem(b=3, seed=1)
    masses = np.array([0.08, 0.11, 0.2])
    s = mpc_rs.Solver("ball_beam", T, module=ballbeam, tol=1e-10, max_iter=200)
    together = s.solve(x0, cm, cv, params={"m": masses})
    rows = s.param_rows({"m": masses}, 3)
    assert rows.shape == (3, 6) and np.array_equal(rows[:, s.param_names.index("m")], masses)
    assert np.array_equal(s.solve(x0, cm, cv, params=rows)["u"], together["u"])
    for i, m in enumerate(masses):
        alone = mpc_rs.Solver("ball_beam", T, module=ballbeam, tol=1e-10, max_iter=200, params={"m": m})
        one = alone.solve(x0[i:i + 1], cm[i:i + 1], cv[i:i + 1])
        assert np.array_equal(one["u"][0], together["u"][i]), i
        assert np.array_equal(one["x"][0], together["x"][i]), i
    # Shared parameters still solve as before after a per-problem batch.
    assert np.array_equal(s.solve(x0, cm, cv)["u"], mpc_rs.Solver("ball_beam", T, module=ballbeam, tol=1e-10,
                                                                   max_iter=200).solve(x0, cm, cv)["u"])
    with pytest.raises(ValueError, match=r"params: expected shape \(3, 6\)"):
        s.solve(x0, cm, cv, params=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['mass'\]"):
        s.solve(x0, cm, cv, params={"mass": masses})
    with pytest.raises(ValueError, match=r"params\['m'\]: expected a scalar or shape \(3,\)"):
        s.solve(x0, cm, cv, params={"m": masses[:2]})


def test_gradients_match_finite_differences_of_resolved_problems():
    x0, cm, cv = problem(b=2, seed=2)
    masses = np.array([0.1, 0.15])
    kw = dict(module=ballbeam, tol=1e-12, max_iter=300, gradient="exact")
    s = mpc_rs.Solver("ball_beam", T, grad_params=True, **kw)
    sol = s.solve(x0, cm, cv, params={"m": masses})
    assert all(sol["converged"]), sol["stop"]
    assert np.max(np.abs(sol["u"])) < 1.9, "the FD check needs no active bound"
    rng = np.random.default_rng(3)
    wx, wu = rng.standard_normal(sol["x"].shape), rng.standard_normal(sol["u"].shape)
    g = s.backward(wx, wu)
    assert g["status"] == ["ok", "ok"]
    plain = mpc_rs.Solver("ball_beam", T, **kw)

    def loss(x0_=x0, cv_=cv, m=masses):
        r = plain.solve(x0_, cm, cv_, params={"m": m})
        assert all(r["converged"]), r["stop"]
        return np.sum(wx * r["x"], axis=(1, 2)) + np.sum(wu * r["u"], axis=(1, 2))

    h = 1e-6
    k = s.param_names.index("m")
    fd = (loss(m=masses + h) - loss(m=masses - h)) / (2 * h)
    np.testing.assert_allclose(g["params"][:, k], fd, rtol=1e-5, atol=1e-6)
    for (i, j) in [(0, 0), (1, 2)]:
        d = np.zeros_like(x0)
        d[i, j] = h
        fd = (loss(x0_=x0 + d) - loss(x0_=x0 - d))[i] / (2 * h)
        assert abs(g["x_init"][i, j] - fd) <= 1e-5 * max(1.0, abs(fd)), (i, j, g["x_init"][i, j], fd)
    for (i, t, j) in [(0, 3, 4), (1, 10, 0), (0, 20, 2)]:
        d = np.zeros_like(cv)
        d[i, t, j] = h
        fd = (loss(cv_=cv + d) - loss(cv_=cv - d))[i] / (2 * h)
        assert abs(g["c"][i, t, j] - fd) <= 1e-5 * max(1.0, abs(fd)), (i, t, j, g["c"][i, t, j], fd)


def test_dynamics_from_python_equal_the_numpy_model_per_problem():
    s = mpc_rs.Solver("ball_beam", T, module=ballbeam)
    x = np.array([[0.2, 0.1, 0.05, -0.1], [-0.3, 0.0, -0.02, 0.2]])
    u = np.array([[0.3], [-1.0]])
    masses = np.array([0.08, 0.2])
    got = s.dynamics(x, u, params={"m": masses})["x_next"]
    for i in range(2):
        p = dict(DEFAULTS, m=masses[i])
        np.testing.assert_allclose(got[i], step(x[i], u[i], p), rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match=r"u: expected shape \(2, 1\)"):
        s.dynamics(x, u[:1])
