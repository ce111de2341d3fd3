#!/usr/bin/env bash
# Collects a finished training run into results/<name>/: evaluation (summary.json + plots), the
# training log and curves, and the small checkpoint (networks, normaliser, counters, config;
# the Adam moments are left out to keep the repository small).
# Usage: bash results/collect.sh runs/acmpc-t2k5 acmpc-t2k5 [mpc binary] [checkpoint name]
# The checkpoint defaults to the run's latest; naming one (e.g. step_003309568) collects an
# earlier one, and train.csv is then cut at that checkpoint's update.
set -euo pipefail
run="$1"; name="$2"; mpc="${3:-target/release/mpc}"
dest="results/$name"
rm -rf "$dest"; mkdir -p "$dest/checkpoint"
ck="$run/checkpoints/${4:-$(cat "$run/checkpoints/latest")}"
cp "$ck"/{model.safetensors,normalizer.json,state.json,config.yaml} "$dest/checkpoint/"
cp "$run/config.yaml" "$dest/"
updates=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["updates"])' "$ck/state.json")
awk -F, -v last="$updates" 'NR == 1 || $1 <= last' "$run/train.csv" > "$dest/train.csv"
# Curves of exactly the collected rows.
cp "$dest/train.csv" "$dest/.train.csv" && mkdir -p "$dest/.plot" && mv "$dest/.train.csv" "$dest/.plot/train.csv"
"$mpc" train --out "$dest/.plot" --plot-only >/dev/null && mv "$dest/.plot/training.png" "$dest/" ; rm -rf "$dest/.plot"
[[ -f "$run/summary.json" ]] && cp "$run/summary.json" "$dest/train_summary.json"
mkdir -p "$dest/eval"
"$mpc" eval --checkpoint "$dest/checkpoint" --laps 2 --out "$dest/eval" | tee "$dest/eval/stdout.txt"
