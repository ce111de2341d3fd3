#!/usr/bin/env bash
# Collects a finished training run into results/<name>/: evaluation (summary.json + plots), the
# training log and curves, and the small checkpoint (networks, normaliser, counters, config;
# the Adam moments are left out to keep the repository small).
# Usage: bash results/collect.sh runs/acmpc-t2k5 acmpc-t2k5 [mpc binary]
set -euo pipefail
run="$1"; name="$2"; mpc="${3:-target/release/mpc}"
dest="results/$name"
rm -rf "$dest"; mkdir -p "$dest/checkpoint"
ck="$run/checkpoints/$(cat "$run/checkpoints/latest")"
cp "$ck"/{model.safetensors,normalizer.json,state.json,config.yaml} "$dest/checkpoint/"
cp "$run"/{train.csv,config.yaml} "$dest/"
[[ -f "$run/training.png" ]] && cp "$run/training.png" "$dest/"
[[ -f "$run/summary.json" ]] && cp "$run/summary.json" "$dest/train_summary.json"
mkdir -p "$dest/eval"
"$mpc" eval --checkpoint "$dest/checkpoint" --laps 2 --out "$dest/eval" | tee "$dest/eval/stdout.txt"
