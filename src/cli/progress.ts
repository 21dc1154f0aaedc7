// Progress of long work: a live bar on a terminal (step, loss, samples per second, ETA), plain lines
// when stderr is not a terminal (a log file or CI), at most one every few seconds. Always on stderr,
// so stdout stays clean for `--json`.

import cliProgress from 'cli-progress';

export interface ProgressReporter {
  update(done: number, fields: { loss: number; rate: number; epoch: number }): void;
  /** Prints a line without breaking the bar. */
  log(line: string): void;
  stop(): void;
}

/**
 * A reporter for `total` steps. `startStep` is where a resumed run continues: the bar starts there, and the
 * rate and ETA count only the steps done since (the steps of an earlier session took an unknown time).
 */
export function createProgress(
  total: number,
  label: string,
  {
    quiet = false,
    startStep = 0,
    clock = () => performance.now(),
  }: { quiet?: boolean; startStep?: number; /** milliseconds; tests pass their own */ clock?: () => number } = {},
): ProgressReporter {
  if (quiet) return { update() {}, log() {}, stop() {} };
  // A loss is shown once a step has produced one (a resumed run's first update carries none).
  const lossText = (loss: number): string => (Number.isFinite(loss) ? loss.toFixed(4) : '-');
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: `${label} [{bar}] {value}/{total} steps | epoch {epoch} | loss {loss} | {rate} samples/s | ETA {eta_formatted}`,
        hideCursor: true,
        etaBuffer: 50,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, startStep, { loss: '-', rate: '-', epoch: 1 });
    return {
      update(done, { loss, rate, epoch }) {
        bar.update(done, { loss: lossText(loss), rate: rate.toFixed(0), epoch: epoch + 1 });
      },
      log(line) {
        process.stderr.write('\r\x1b[K' + line + '\n');
      },
      stop() {
        bar.stop();
      },
    };
  }
  let lastPrint = -Infinity;
  const start = clock();
  return {
    update(done, { loss, rate, epoch }) {
      const now = clock();
      // nothing done yet (a resumed run's first update): the caller has already said where it continues
      if (done <= startStep) return;
      if (now - lastPrint < 10_000 && done !== total) return;
      lastPrint = now;
      const eta = (((now - start) / 1000) * (total - done)) / (done - startStep);
      process.stderr.write(
        `${label} step ${done}/${total} epoch ${epoch + 1} loss ${lossText(loss)} ${rate.toFixed(0)} samples/s ETA ${eta.toFixed(0)}s\n`,
      );
    },
    log(line) {
      process.stderr.write(line + '\n');
    },
    stop() {},
  };
}
