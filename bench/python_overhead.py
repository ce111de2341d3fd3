"""What the Python binding adds to a solve: B=256, T=10 quadrotor hover problems, forward and
backward, through the NumPy API and through the torch layer, against the time spent inside the
Rust solver in the same calls (the ``seconds`` entries the binding reports), medians of
repetitions on an idle machine. ``ratio``: wall time over the time inside Rust in the same calls
(what the binding adds); ``ratio_to_numpy_rust``: wall time over the Rust time of the NumPy
calls (also counts torch's own work and its thread pool competing with the solver's).

    python bench/python_overhead.py [--reps 30] [--out bench/results/python-overhead.json]
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

import mpc_rs


def problem(b, t, seed=0):
    rng = np.random.default_rng(seed)
    nx, nu = 10, 4
    n = nx + nu
    q = np.diag([10, 10, 10, 1, 1, 1, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1])
    target = np.zeros(n)
    target[:3] = rng.uniform(-1, 1, 3)
    target[3] = 1.0
    target[10] = 0.752 * 9.8066
    C = np.tile(q, (b, t, 1, 1))
    c = np.tile(-q @ target, (b, t, 1))
    x0 = np.zeros((b, nx))
    x0[:, :3] = rng.uniform(-1, 1, (b, 3))
    x0[:, 3] = 1.0
    return x0, C, c


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--horizon", type=int, default=10)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    b, t = a.batch, a.horizon
    x0, C, c = problem(b, t)
    s = mpc_rs.Solver("quadrotor", t, max_iter=5, eps=1e-12)
    gx, gu = np.ones((b, t, 10)), np.ones((b, t, 4))
    rows = {}

    def measure(name, call):
        call()  # warm-up (first-touch allocations)
        wall, inner = [], []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            r = call()
            wall.append(time.perf_counter() - t0)
            inner.append(r)
        w, i = statistics.median(wall), statistics.median(inner)
        base = rows.get("numpy solve+backward", {}).get("rust_ms", 1e3 * i) / 1e3
        rows[name] = {"wall_ms": 1e3 * w, "rust_ms": 1e3 * i, "ratio": w / i, "ratio_to_numpy_rust": w / base}
        print(f"{name:28s} wall {1e3 * w:8.3f} ms   inside Rust {1e3 * i:8.3f} ms   ratio {w / i:5.3f}   "
              f"to the NumPy call's Rust time {w / base:5.3f}")

    def numpy_call():
        sol = s.solve(x0, C, c)
        g = s.backward(gx, gu)
        return sol["seconds"] + g["seconds"]

    measure("numpy solve+backward", numpy_call)
    try:
        import torch

        if a.torch_threads:
            torch.set_num_threads(a.torch_threads)
        from mpc_rs.torch import MPC

        layer = MPC("quadrotor", t, max_iter=5, eps=1e-12)
        tx0, tC = torch.from_numpy(x0), torch.from_numpy(C)
        tc = torch.from_numpy(c).requires_grad_(True)
        inner = {}
        solve, backward = layer.solver.solve, layer.solver.backward

        def timed_solve(*args, **kw):
            r = solve(*args, **kw)
            inner["s"] = r["seconds"]
            return r

        def timed_backward(*args, **kw):
            r = backward(*args, **kw)
            inner["b"] = r["seconds"]
            return r

        layer.solver.solve, layer.solver.backward = timed_solve, timed_backward

        def torch_call():
            x, u = layer(tx0, tC, tc)
            (x.sum() + u.sum()).backward()
            return inner["s"] + inner["b"]

        measure("torch layer forward+backward", torch_call)
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    if a.out:
        doc = {"command": "python bench/python_overhead.py " + " ".join(f"--{k} {v}" for k, v in vars(a).items() if k != "out"),
               "machine": f"{cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()}",
               "date": time.strftime("%Y-%m-%d"), "batch": b, "horizon": t, "iterations": 5, "reps": a.reps,
               "torch": torch_version, "results": rows}
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
