// Test hook for the checkpoint save sequence (docs/guarantees.md): every file-system step of a save is a
// numbered fault point, and a test can make the process die (SIGKILL) or fail with ENOSPC at any one of
// them, to prove that a complete checkpoint survives a kill or a full disk at every step.
//
// Two ways in: `setFaultHook(fn)` (in-process tests: the hook throws to simulate a kill there), or the
// environment variable ROAF_TEST_FAULT=<action>:<save>:<point> for a child process, where <action> is
// `kill`, `enospc` or `pause` (sleep 5 s there, after printing `fault point paused`, so a test can send
// a signal in the middle of a save), <save> is the 1-based index of the save within the process and
// <point> the 1-based fault point within that save. ROAF_TEST_FAULT=trace prints every point to stderr.
// ROAF_TEST_STEP_MS=n makes every training step take n ms longer (a test's time to send a signal
// mid-run). Unset, they cost a counter increment per file-system step and an environment look-up per step.

/** The environment variables of the hook. */
export const FAULT_ENV = 'ROAF_TEST_FAULT';
export const STEP_DELAY_ENV = 'ROAF_TEST_STEP_MS';

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Called after every training step: the step delay of the test hook. */
export function stepDelay(): void {
  const ms = Number(process.env[STEP_DELAY_ENV] ?? 0);
  if (ms > 0) sleep(ms);
}

export interface FaultPoint {
  /** 1-based index of the save in this process. */
  save: number;
  /** 1-based index of the point within the save. */
  point: number;
  /** What is about to happen, e.g. `rename checkpoint -> checkpoint.old`. */
  step: string;
  path: string;
}

type FaultHook = (point: FaultPoint) => void;

let hook: FaultHook | null = null;
let saves = 0;
let points = 0;

/** Installs (or with null removes) an in-process hook called at every fault point; it may throw. */
export function setFaultHook(next: FaultHook | null): void {
  hook = next;
}

/** Restarts the numbering (tests that run several simulated processes in one). */
export function resetFaultCounters(): void {
  saves = 0;
  points = 0;
}

/** Marks the start of a save: points are numbered from 1 again. */
export function beginSave(): void {
  saves += 1;
  points = 0;
}

interface EnvFault {
  action: 'kill' | 'enospc' | 'pause' | 'trace';
  save: number;
  point: number;
}

function envFault(): EnvFault | null {
  const spec = process.env[FAULT_ENV];
  if (spec === undefined || spec === '') return null;
  if (spec === 'trace') return { action: 'trace', save: 0, point: 0 };
  const match = /^(kill|enospc|pause):(\d+):(\d+)$/.exec(spec);
  if (!match) throw new Error(`${FAULT_ENV} must be kill|enospc|pause:<save>:<point> or trace, got '${spec}'`);
  return { action: match[1] as 'kill' | 'enospc' | 'pause', save: Number(match[2]), point: Number(match[3]) };
}

/** A fault point: called right before each file-system step of a save. */
export function faultPoint(step: string, path: string): void {
  points += 1;
  const here: FaultPoint = { save: saves, point: points, step, path };
  hook?.(here);
  const fault = envFault();
  if (fault === null) return;
  if (fault.action === 'trace') {
    process.stderr.write(`fault point ${here.save}:${here.point} ${step} ${path}\n`);
    return;
  }
  if (fault.save !== here.save || fault.point !== here.point) return;
  if (fault.action === 'kill') process.kill(process.pid, 'SIGKILL');
  if (fault.action === 'pause') {
    process.stderr.write(`fault point paused ${here.save}:${here.point} ${step} ${path}\n`);
    sleep(5000);
    return;
  }
  const error = new Error(`ENOSPC: no space left on device, write '${path}'`) as Error & Record<string, unknown>;
  Object.assign(error, { code: 'ENOSPC', errno: -28, syscall: 'write', path });
  throw error;
}
