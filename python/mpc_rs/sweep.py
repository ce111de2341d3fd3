"""A sweep of the AC-MPC trainer over the paper's grid with Ray Tune (requires ``ray[tune]``).

Each trial is the project's trainer (``mpc train``) with one horizon T, iteration count K and
seed; it reports every PPO update as it goes (steps, mean return of the last 100 episodes, crash
fraction, and the periodic evaluation's gates and lap time), and hands each new trainer
checkpoint (the whole run directory) to Tune, so a trial that Tune restarts resumes from its
last checkpoint (``mpc train --resume``). The results table (one row per trial) is written as
CSV and Markdown. The same command runs on one machine (a local Ray instance) and on a Ray
cluster (``--address auto``, or ``RAY_ADDRESS``; each node needs the ``mpc`` binary at the same
path and a storage path every node can reach).

    python -m mpc_rs.sweep --horizons 2 5 10 --iters 1 5 10 --seeds 0 1 2 \\
        --set ppo.total_steps=5000000 --out runs/sweep

``--set`` passes trainer settings through (``mpc train --print-config`` lists them).
"""

import argparse
import csv
import math
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from ray import tune

__all__ = ["trial", "sweep", "main"]

REPORTED = ("steps", "ep_return_mean100", "crash_fraction100", "ep_gates_mean100", "eval_gates", "eval_lap_time",
            "steps_per_s")


def _rows(path):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _checkpoints(run):
    d = run / "checkpoints"
    return sorted(p.name for p in d.glob("step_*")) if d.exists() else []


def trial(config):
    """One trainer run (a Tune function trainable): ``config`` holds ``mpc_bin``, ``horizon``,
    ``iters``, ``seed`` and ``sets`` (extra ``--set`` overrides)."""
    run = pathlib.Path(tempfile.mkdtemp(prefix="mpc-trial-")) / "run"
    restored = tune.get_checkpoint()
    args = []
    if restored is not None:
        with restored.as_directory() as d:
            shutil.copytree(d, run)
        args.append("--resume")
    sets = [f"mpc.horizon={config['horizon']}", f"mpc.iters={config['iters']}", f"seed={config['seed']}"]
    sets += list(config.get("sets", []))
    cmd = [config["mpc_bin"], "train", "--out", str(run), "--no-progress"] + args
    for s in sets:
        cmd += ["--set", s]
    env = dict(os.environ, RAYON_NUM_THREADS=str(config.get("threads", 1)))
    done = len(_rows(run / "train.csv"))
    known = set(_checkpoints(run))
    log = open(run.parent / "train.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def snapshot(step_dir, updates):
        """The run directory as of checkpoint `step_dir` (after `updates` updates): what
        `mpc train --resume` needs."""
        snap = pathlib.Path(tempfile.mkdtemp(prefix="mpc-ckpt-")) / "run"
        (snap / "checkpoints").mkdir(parents=True)
        shutil.copy2(run / "config.yaml", snap / "config.yaml")
        lines = (run / "train.csv").read_text().splitlines(keepends=True)
        (snap / "train.csv").write_text("".join(lines[: 1 + updates]))
        shutil.copytree(step_dir, snap / "checkpoints" / step_dir.name)
        (snap / "checkpoints" / "latest").write_text(step_dir.name + "\n")
        return tune.Checkpoint.from_directory(str(snap))

    def report_new(finished):
        # The trainer writes an update's CSV row, then its checkpoint: a row is reported once
        # the next one exists (or the trainer has exited), with its checkpoint when it has one.
        nonlocal done
        rows = _rows(run / "train.csv")
        upto = len(rows) if finished else len(rows) - 1
        for k in range(done, max(done, upto)):
            row = rows[k]
            metrics = {key: _num(row.get(key)) for key in REPORTED}
            metrics["update"] = k + 1
            step_dir = run / "checkpoints" / f"step_{int(_num(row['steps'])):09d}"
            if step_dir.name not in known and step_dir.is_dir():
                known.add(step_dir.name)
                tune.report(metrics, checkpoint=snapshot(step_dir, k + 1))
            else:
                tune.report(metrics)
            done = k + 1
            if restored is None and metrics["update"] == config.get("_fail_at_update"):
                # Test hook: a trial dying mid-run (preempted node), which Tune restarts from its
                # last checkpoint.
                proc.kill()
                raise RuntimeError(f"injected failure after update {metrics['update']}")

    while proc.poll() is None:
        time.sleep(0.5)
        report_new(False)
    report_new(True)
    log.close()
    if proc.returncode != 0:
        tail = (run.parent / "train.log").read_text().splitlines()[-15:]
        raise RuntimeError(f"mpc train exited with {proc.returncode}:\n" + "\n".join(tail))


def sweep(horizons, iters, seeds, sets=(), out="runs/sweep", mpc_bin=None, address=None, cpus_per_trial=1,
          num_cpus=None, _fail_at_update=None):
    """Runs the grid and writes ``results.csv`` and ``results.md`` into ``out``; returns the rows."""
    import ray

    mpc_bin = mpc_bin or os.environ.get("MPC_BIN") or shutil.which("mpc")
    if not mpc_bin or not os.path.exists(mpc_bin):
        raise FileNotFoundError("the mpc binary: pass --mpc-bin, set MPC_BIN, or put mpc on PATH")
    out = pathlib.Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                 log_to_driver=False)
    space = {"mpc_bin": os.path.abspath(mpc_bin), "sets": list(sets), "threads": cpus_per_trial,
             "_fail_at_update": _fail_at_update,
             "horizon": tune.grid_search(list(horizons)), "iters": tune.grid_search(list(iters)),
             "seed": tune.grid_search(list(seeds))}
    tuner = tune.Tuner(tune.with_resources(trial, {"cpu": cpus_per_trial}), param_space=space,
                       run_config=tune.RunConfig(name="mpc-sweep", storage_path=str(out / "tune"), verbose=0,
                                                 failure_config=tune.FailureConfig(max_failures=2)))
    grid = tuner.fit()
    rows = []
    for r in grid:
        c, m = r.config, r.metrics or {}
        hist = r.metrics_dataframe
        best_gates = float(hist["eval_gates"].max()) if hist is not None and "eval_gates" in hist else math.nan
        rows.append({"horizon": c["horizon"], "iters": c["iters"], "seed": c["seed"], "steps": int(m.get("steps", 0)),
                     "updates": int(m.get("update", 0)), "ep_return_mean100": m.get("ep_return_mean100", math.nan),
                     "crash_fraction100": m.get("crash_fraction100", math.nan), "best_eval_gates": best_gates,
                     "last_eval_lap_time": m.get("eval_lap_time", math.nan),
                     "error": "" if r.error is None else str(r.error).splitlines()[0],
                     "checkpoint": "" if r.checkpoint is None else r.checkpoint.path})
    rows.sort(key=lambda r: (r["horizon"], r["iters"], r["seed"]))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cols = ["horizon", "iters", "seed", "steps", "ep_return_mean100", "crash_fraction100", "best_eval_gates",
            "last_eval_lap_time", "error"]
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in cols) + " |" for r in rows]
    sets_text = " ".join(f"--set {s}" for s in sets)
    (out / "results.md").write_text(
        f"# AC-MPC sweep ({time.strftime('%Y-%m-%d')})\n\nTrainer settings: {sets_text or 'defaults'}; "
        f"{len(rows)} trials.\n\n" + "\n".join(lines) + "\n")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mpc_rs.sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--horizons", type=int, nargs="+", default=[2, 5, 10])
    ap.add_argument("--iters", type=int, nargs="+", default=[1, 5, 10])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default="runs/sweep")
    ap.add_argument("--mpc-bin", default=None)
    ap.add_argument("--address", default=None, help="a Ray cluster (default: RAY_ADDRESS, else a local instance)")
    ap.add_argument("--cpus-per-trial", type=int, default=1)
    a = ap.parse_args(argv)
    rows = sweep(a.horizons, a.iters, a.seeds, a.sets, a.out, a.mpc_bin, a.address, a.cpus_per_trial)
    print((pathlib.Path(a.out) / "results.md").read_text())
    return 0 if all(not r["error"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
