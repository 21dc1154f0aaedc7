// The plain-text progress lines (stderr not a terminal): a resumed run's rate and ETA count only the steps
// done since it resumed, and a step without a loss yet shows '-', never NaN.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProgress } from '../src/cli/progress.js';

/** Runs `body` with stderr's writes captured; returns the lines written. */
function captureStderr(body: () => void): string[] {
  const lines: string[] = [];
  const original = process.stderr.write.bind(process.stderr);
  process.stderr.write = (chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  };
  try {
    body();
  } finally {
    process.stderr.write = original;
  }
  return lines;
}

test('a resumed run: nothing printed before its first new step, ETA from the steps since it resumed', () => {
  let now = 0;
  const lines = captureStderr(() => {
    const bar = createProgress(960, 'deep-mlp/roaf-mlp', { startStep: 480, clock: () => now });
    bar.update(480, { loss: NaN, rate: 0, epoch: 1 });
    now = 20_000; // 20 s for 10 steps: 2 s a step, 470 steps left
    bar.update(490, { loss: 0.25, rate: 62.5, epoch: 1 });
  });
  assert.equal(lines.length, 1, lines.join(''));
  assert.match(lines[0] ?? '', /step 490\/960 epoch 2 loss 0\.2500 63 samples\/s ETA 940s/);
});

test('a loss that is not a number yet is shown as "-"', () => {
  let now = 0;
  const lines = captureStderr(() => {
    const bar = createProgress(10, 'train', { clock: () => now });
    now = 1_000;
    bar.update(1, { loss: NaN, rate: 5, epoch: 0 });
  });
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /loss - /);
  assert.doesNotMatch(lines[0] ?? '', /NaN/);
});
