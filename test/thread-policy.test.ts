// The native thread pool's rule 3 (native/src/parallel.c): a long task that recurs every training step is
// timed on one thread and on two, and runs the faster way. On these shared machines single runs are often
// several times slower than usual; the rule must not let such runs keep a task on the slower side, and must
// still follow a change that lasts (the other core taken by another process, then given back). Simulated
// through the addon's test hook with made-up costs, so nothing here depends on the machine's timing.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { loadNativeBackend, nativeLoadError, simulateNativeThreadChoice } from '../src/backend/native.js';

const nativeSkip =
  loadNativeBackend() === null ? `native backend not built: ${nativeLoadError() ?? 'unknown reason'}` : false;

/** Share of runs in [from, to) that ran on `threads` threads. */
function share(choices: Int32Array, threads: number, from: number, to: number): number {
  let count = 0;
  for (let i = from; i < to; i++) if (choices[i] === threads) count++;
  return count / (to - from);
}

describe('thread-count policy, rule 3 (timed kinds)', { skip: nativeSkip }, () => {
  it('stays on two threads when they are faster, through isolated slow runs and short bursts', () => {
    const runs = 3000;
    const one = Array.from({ length: runs }, (_, i) => (i % 89 === 0 ? 6 : 1.4));
    // two threads 1.4x faster; a run six times slower every 97 runs, and two slow runs in a row every 300
    const two = Array.from({ length: runs }, (_, i) => (i % 97 === 0 || i % 300 === 150 || i % 300 === 151 ? 6 : 1));
    const choices = simulateNativeThreadChoice(one, two);
    const onTwo = share(choices, 2, 10, runs);
    assert.ok(onTwo >= 0.9, `two threads on ${(100 * onTwo).toFixed(1)} % of the runs, expected >= 90 %`);
  });

  it('moves to one thread within a few runs when two become slower for good, and back when they recover', () => {
    const runs = 4000;
    const one = Array.from({ length: runs }, () => 1.4);
    // the other core is busy in runs [1000, 2500): two threads take 2.5 instead of 1
    const two = Array.from({ length: runs }, (_, i) => (i >= 1000 && i < 2500 ? 2.5 : 1));
    const choices = simulateNativeThreadChoice(one, two);
    assert.ok(share(choices, 2, 10, 1000) >= 0.9, 'two threads while they are faster');
    const firstOnOne = choices.findIndex((threads, i) => i >= 1000 && threads === 1);
    assert.ok(firstOnOne >= 1000 && firstOnOne <= 1003, `moved to one thread at run ${firstOnOne}`);
    assert.ok(share(choices, 1, 1003, 2500) >= 0.95, 'one thread while the other core is busy');
    const onTwoAfter = share(choices, 2, 2800, runs);
    assert.ok(onTwoAfter >= 0.9, `two threads on ${(100 * onTwoAfter).toFixed(1)} % of the runs after the recovery`);
  });

  it('refuses costs that do not match the runs', () => {
    assert.throws(() => simulateNativeThreadChoice([1, 2], [1]), /one cost per run/);
  });
});
