"""dL/dtheta of mpc.pytorch against `mpc solve`'s `grad_params` (issue 13).

mpc.pytorch (PyPI mpc==0.0.6) differentiates the solution with respect to the dynamics'
parameters by re-linearising the dynamics at the solution with autograd (GradMethods.AUTO_DIFF,
create_graph) and back-propagating its LQR step's dF, df into them. Its KKT matrix is
Gauss-Newton, but the re-linearised F(theta) carries the co-state weighted mixed derivative
lambda^T dF/dtheta d. This script measures what it computes on the reference fixtures (the
pendulum and the cart-pole, their physical parameters as nn.Parameter) and compares it with
this project's Gauss-Newton and exact `grad_params`.

Run (needs the peer environment of ../shared/peer-bench/README.md):
    $PEER_VENV/bin/python bench/peer/grad_params_vs_mpc_pytorch.py PEER_BENCH_DIR MPC_BINARY [OUT.md]
"""
import json
import os
import subprocess
import sys
import tempfile

peer_dir, mpc_bin = sys.argv[1], sys.argv[2]
out_md = sys.argv[3] if len(sys.argv) > 3 else None
sys.path.insert(0, peer_dir)

import torch  # noqa: E402
from torch import nn  # noqa: E402
from peer_common import setup_torch, polished_pnqp  # noqa: E402
from mpc import mpc  # noqa: E402
from mpc.mpc import GradMethods, QuadCost  # noqa: E402
from mpc.env_dx import pendulum, cartpole  # noqa: E402

setup_torch(2)
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "tests", "fixtures")

SYSTEMS = [
    # (fixture, mpc.pytorch module, the parameters it learns in its own order)
    ("pendulum", lambda p: pendulum.PendulumDx(p, simple=True), ["g", "m", "l"]),
    ("cartpole", lambda p: cartpole.CartpoleDx(p), ["gravity", "masscart", "masspole", "length"]),
]


def ours(doc, gradient):
    d = dict(doc)
    d["solver"] = dict(doc["solver"], gradient=gradient)
    with tempfile.TemporaryDirectory() as tmp:
        p, s = os.path.join(tmp, "p.json"), os.path.join(tmp, "s.json")
        with open(p, "w") as f:
            json.dump(d, f)
        subprocess.run([mpc_bin, "solve", "--problem", p, "--out", s], check=True)
        with open(s) as f:
            return json.load(f)


rows = []
dus = []
for name, make_dx, names in SYSTEMS:
    with open(os.path.join(FIXTURES, f"{name}.problem.json")) as f:
        doc = json.load(f)
    with open(os.path.join(FIXTURES, f"{name}.meta.json")) as f:
        meta = json.load(f)["reference_solver"]
    B, T = len(doc["x_init"]), doc["horizon"]
    x_init = torch.tensor(doc["x_init"])
    C = torch.tensor(doc["C"]).transpose(0, 1).contiguous()
    c = torch.tensor(doc["c"]).transpose(0, 1).contiguous()
    nx, nu = x_init.shape[1], C.shape[-1] - x_init.shape[1]
    lo = torch.tensor(doc["u_lower"]).expand(T, B, nu).contiguous()
    hi = torch.tensor(doc["u_upper"]).expand(T, B, nu).contiguous()
    theta = nn.Parameter(torch.tensor([float(doc["params"][k]) for k in names]))
    dx = make_dx(theta)
    ctrl = mpc.MPC(
        nx, nu, T, u_lower=lo, u_upper=hi, lqr_iter=meta["lqr_iter"], eps=meta["eps"], n_batch=B,
        grad_method=GradMethods.AUTO_DIFF, linesearch_decay=meta["linesearch_decay"],
        max_linesearch_iter=meta["max_linesearch_iter"], exit_unconverged=False,
        detach_unconverged=False, backprop=True, verbose=-1, best_cost_eps=meta["best_cost_eps"],
        not_improved_lim=meta["not_improved_lim"], back_eps=meta["back_eps"])
    with polished_pnqp():
        x, u, _ = ctrl(x_init, QuadCost(C, c), dx)
    gx = torch.tensor(doc["grad_x"]).transpose(0, 1)
    gu = torch.tensor(doc["grad_u"]).transpose(0, 1)
    L = (gx * x).sum() + (gu * u).sum()
    L.backward()
    theirs = theta.grad.tolist()
    gn, ex = ours(doc, "gauss-newton"), ours(doc, "exact")
    du = float((torch.tensor(gn["u"]).transpose(0, 1) - u.detach()).abs().max())
    print(f"{name}: max |u_ours - u_mpc.pytorch| = {du:.1e}")
    dus.append((name, du))
    for k, n in enumerate(names):
        a = sum(gn["grad_params"][n])
        e = sum(ex["grad_params"][n])
        rel = abs(a - theirs[k]) / max(1.0, abs(theirs[k]))
        rows.append((name, n, theirs[k], a, e, rel))
        print(f"{name:9s} {n:9s} mpc.pytorch {theirs[k]: .10e}  ours GN {a: .10e}  ours exact {e: .10e}  rel diff GN {rel:.1e}")

worst = max(r[5] for r in rows)
print(f"largest relative difference (Gauss-Newton vs mpc.pytorch): {worst:.1e}")
if out_md:
    with open(out_md, "w") as f:
        f.write("# dL/dθ: mpc.pytorch against `mpc solve` (`grad_params`)\n\n")
        f.write(f"Command: `$PEER_VENV/bin/python bench/peer/grad_params_vs_mpc_pytorch.py ../shared/peer-bench target/release/mpc {os.path.relpath(out_md)}`  \n")
        f.write(f"torch {torch.__version__}, mpc 0.0.6, float64; the reference fixtures (loss L = Σ grad_x·x* + grad_u·u*, summed over the batch).\n\n")
        f.write("| system | parameter | mpc.pytorch | ours, Gauss-Newton | ours, exact | rel. diff (GN) |\n|---|---|---:|---:|---:|---:|\n")
        for r in rows:
            f.write(f"| {r[0]} | {r[1]} | {r[2]:.10e} | {r[3]:.10e} | {r[4]:.10e} | {r[5]:.1e} |\n")
        f.write(f"\nLargest relative difference between mpc.pytorch and our Gauss-Newton mode: {worst:.1e}. ")
        f.write("The two solvers' solutions differ by " + ", ".join(f"{d:.1e} ({n})" for n, d in dus) + " in max |u|, which bounds the agreement.\n")
