#!/usr/bin/env bash
# A report comparing roaf-mlp (defaults), mlp and resmlp at depth DEPTH (default 1,000), width 64, on
# MNIST: each trained for one epoch (all 60,000 images, Adam, batch 128) with --log-gradients and an
# evaluation on 2,000 test images every 50 steps, diagnosed from its checkpoint, then compared by
# `roaf report`, and the page photographed by headless Chromium.
#
#   npm run build && bash experiments/compare-report.sh [RUNS_DIR] [DEPTH]
#
# Writes RUNS_DIR (default /tmp/roaf-compare)/{roaf-mlp,mlp,resmlp}/ and report.html, and
# experiments/report-screenshot.png. Needs Debian's chromium for the screenshot.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
roaf="node $here/../dist/src/cli/main.js"
runs="${1:-/tmp/roaf-compare}"
depth="${2:-1000}"
mkdir -p "$runs"
for model in roaf-mlp mlp resmlp; do
  $roaf train --model "$model" --task mnist --depth "$depth" --width 64 --epochs 1 --test-limit 2000 \
    --batch 128 --eval-every 50 --log-gradients --quiet --out "$runs/$model"
  $roaf diagnose --checkpoint "$runs/$model/checkpoint" --batch 32 --quiet --out "$runs/$model/diagnostics" > /dev/null
done
$roaf report "$runs/roaf-mlp" "$runs/mlp" "$runs/resmlp" --out "$runs/report.html" \
  --title "roaf-mlp vs mlp vs resmlp, depth $depth, width 64, MNIST, one epoch"
profile="$(mktemp -d)"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars --window-size=1400,2600 \
  --screenshot="$here/report-screenshot.png" "file://$runs/report.html" 2> /dev/null
rm -rf "$profile"
echo "report: $runs/report.html; screenshot: $here/report-screenshot.png"
