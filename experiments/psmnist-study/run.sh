#!/usr/bin/env bash
# psMNIST study: which lever lifts a single-layer ROAF RNN's ten-epoch test accuracy (the claim's 98 %)?
# Probes at N = 256 with the permutation filter (about 25 minutes for ten epochs on one Zen 5 core), each the
# same command as the float32 run of docs/precision.md with one setting changed; results in docs/psmnist.md.
# Usage: experiments/psmnist-study/run.sh [probe ...]   (default: every probe; a finished probe is skipped,
# an unfinished one continues from its checkpoint)
set -euo pipefail
cd "$(dirname "$0")/../.."
base=(--model roaf-rnn --task psmnist --hidden 256 --filter permutation --epochs 10 --batch 64 --lr-schedule cosine
      --alpha 1 --seed 0 --threads 1 --checkpoint-every 200 --quiet)
declare -A probes=(
  [base]="--lr 1e-3 --beta 0.1 --input-scale 3"
  [wd0.1]="--lr 1e-3 --beta 0.1 --weight-decay 0.1 --input-scale 3"
  [wd0.3]="--lr 1e-3 --beta 0.1 --weight-decay 0.3 --input-scale 3"
  [lr2e-3]="--lr 2e-3 --beta 0.1 --input-scale 3"
  [beta0.2]="--lr 1e-3 --beta 0.2 --input-scale 3"
  [scale6]="--lr 1e-3 --beta 0.1 --input-scale 6"
)
order=(wd0.1 base wd0.3 lr2e-3 beta0.2 scale6)
[ $# -gt 0 ] && order=("$@")
for name in "${order[@]}"; do
  out=experiments/psmnist-study/n256-$name
  if [ -f "$out/metrics.jsonl" ] && grep -q '"epoch":10,' "$out/metrics.jsonl"; then echo "$name: finished"; continue; fi
  resume=(); [ -d "$out/checkpoint" ] && resume=(--resume)
  echo "$name: roaf train ${base[*]} ${probes[$name]} --out $out ${resume[*]}"
  # shellcheck disable=SC2086
  node dist/src/cli/main.js train "${base[@]}" ${probes[$name]} --out "$out" "${resume[@]}"
done
