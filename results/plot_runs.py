"""Training curves of several result folders in one figure: mean training lap time, mean
return and the deterministic evaluation's flying lap against env steps.

    python results/plot_runs.py OUT.png results/acmpc-t2k5-5m results/acmlp-5m ...
(needs matplotlib)."""

import csv
import math
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def col(rows, k):
    out = []
    for r in rows:
        try:
            out.append(float(r[k]))
        except (KeyError, ValueError):
            out.append(math.nan)
    return out


def main():
    out, dirs = sys.argv[1], sys.argv[2:]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for d in dirs:
        rows = list(csv.DictReader(open(pathlib.Path(d) / "train.csv")))
        steps = [s / 1e6 for s in col(rows, "steps")]
        name = pathlib.Path(d).name
        axes[0].plot(steps, col(rows, "lap_time_mean100"), label=name)
        axes[1].plot(steps, col(rows, "ep_return_mean100"), label=name)
        ev = [(s, v) for s, v in zip(steps, col(rows, "eval_lap_time")) if not math.isnan(v)]
        if ev:
            axes[2].plot(*zip(*ev), marker="o", label=name)
    for ax, title in zip(axes, ["training lap time (mean of last 100), s", "episode return (mean of last 100)",
                                "deterministic evaluation: best lap, s"]):
        ax.set_title(title)
        ax.set_xlabel("env steps (M)")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylim(4, 14)
    axes[2].set_ylim(4, 14)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
