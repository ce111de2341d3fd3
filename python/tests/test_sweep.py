"""The Ray Tune sweep (``python -m mpc_rs.sweep``) on a local Ray instance with a tiny budget:
2 configurations × 2 seeds of the project's trainer, one results table, each trial reporting
as it goes and leaving a resumable checkpoint (needs ``ray[tune]``: ``scripts/python-extras.sh``;
skipped where it is not installed)."""

import csv
import os
import pathlib

import pytest

pytest.importorskip("ray.tune")

from mpc_rs import sweep  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY = ["n_envs=8", "ppo.n_steps=64", "ppo.total_steps=2048", "ppo.batch_size=256", "log.checkpoint_every=1024",
        "log.eval_every=1024", "net.hidden=64"]


def test_two_configs_two_seeds_one_table(tmp_path):
    mpc_bin = os.environ.get("MPC_BIN") or str(REPO / "target" / "debug" / "mpc")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = sweep.sweep([2, 5], [5], [0, 1], TINY, out=tmp_path, mpc_bin=mpc_bin)
        # A trial that dies after its 3rd update (its last checkpoint: update 2) is restarted by
        # Tune from that checkpoint and resumes there (`mpc train --resume`).
        again = sweep.sweep([2], [5], [0], TINY, out=tmp_path / "failing", mpc_bin=mpc_bin, _fail_at_update=3)
    finally:
        ray.shutdown()
    assert again[0]["error"] == "" and again[0]["steps"] == 2048, again
    ck = pathlib.Path(again[0]["checkpoint"])
    resumed = list(csv.DictReader(open(ck / "train.csv")))
    whole = list(csv.DictReader(open(pathlib.Path(rows[0]["checkpoint"]) / "train.csv")))
    assert [r["steps"] for r in resumed] == ["512", "1024", "1536", "2048"]
    # Updates 1-2 come from the checkpoint, equal to the uninterrupted run of the same seed;
    # updates 3-4 were trained after the resume, whose environments the trainer re-seeds per
    # segment: they differ (a restart from scratch would have replayed the uninterrupted run).
    key = ("ep_return_mean100", "policy_loss")
    assert [[r[k] for k in key] for r in resumed[:2]] == [[r[k] for k in key] for r in whole[:2]]
    assert resumed[3]["ep_return_mean100"] != whole[3]["ep_return_mean100"]
    assert [(r["horizon"], r["seed"]) for r in rows] == [(2, 0), (2, 1), (5, 0), (5, 1)]
    for r in rows:
        assert r["error"] == "", r
        assert r["steps"] == 2048 and r["updates"] == 4, r
        ck = pathlib.Path(r["checkpoint"])
        assert (ck / "train.csv").exists() and (ck / "checkpoints" / "latest").exists(), r
        assert len(list(csv.DictReader(open(ck / "train.csv")))) == 4
    # Different seeds train differently; the same seed with another horizon too.
    returns = [r["ep_return_mean100"] for r in rows]
    assert len(set(returns)) == 4, returns
    table = (tmp_path / "results.md").read_text()
    assert table.count("\n| ") == 5, table
    assert len(list(csv.DictReader(open(tmp_path / "results.csv")))) == 4
