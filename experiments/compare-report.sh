#!/usr/bin/env bash
# A report comparing roaf-mlp (defaults), mlp and resmlp at depth 100, width 64, on MNIST: each trained
# for one epoch on the first 10,000 training images with --log-gradients, diagnosed from its checkpoint,
# then compared by `roaf report`, and the page photographed by headless Chromium.
#
#   npm run build && bash experiments/compare-report.sh [RUNS_DIR]
#
# Writes RUNS_DIR (default /tmp/roaf-compare)/{roaf-mlp,mlp,resmlp}/ and report.html, and
# experiments/report-screenshot.png. Needs Debian's chromium for the screenshot.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
roaf="node $here/../dist/src/cli/main.js"
runs="${1:-/tmp/roaf-compare}"
mkdir -p "$runs"
for model in roaf-mlp mlp resmlp; do
  $roaf train --model "$model" --task mnist --depth 100 --width 64 --epochs 1 --train-limit 10000 --test-limit 2000 \
    --batch 128 --eval-every 10 --log-gradients --quiet --out "$runs/$model"
  $roaf diagnose --checkpoint "$runs/$model/checkpoint" --batch 32 --quiet --out "$runs/$model/diagnostics" > /dev/null
done
$roaf report "$runs/roaf-mlp" "$runs/mlp" "$runs/resmlp" --out "$runs/report.html" \
  --title 'roaf-mlp vs mlp vs resmlp, depth 100, width 64, MNIST (1 epoch on 10,000 images)'
profile="$(mktemp -d)"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars --window-size=1400,2600 \
  --screenshot="$here/report-screenshot.png" "file://$runs/report.html" 2> /dev/null
rm -rf "$profile"
echo "report: $runs/report.html; screenshot: $here/report-screenshot.png"
