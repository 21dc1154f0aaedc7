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

export function createProgress(total: number, label: string, { quiet = false } = {}): ProgressReporter {
  if (quiet) return { update() {}, log() {}, stop() {} };
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
    bar.start(total, 0, { loss: '-', rate: '-', epoch: 1 });
    return {
      update(done, { loss, rate, epoch }) {
        bar.update(done, { loss: loss.toFixed(4), rate: rate.toFixed(0), epoch: epoch + 1 });
      },
      log(line) {
        process.stderr.write('\r\x1b[K' + line + '\n');
      },
      stop() {
        bar.stop();
      },
    };
  }
  let lastPrint = 0;
  const start = performance.now();
  return {
    update(done, { loss, rate, epoch }) {
      const now = performance.now();
      if (now - lastPrint < 10_000 && done !== total) return;
      lastPrint = now;
      const eta = rate > 0 && done > 0 ? (((now - start) / 1000) * (total - done)) / done : 0;
      process.stderr.write(
        `${label} step ${done}/${total} epoch ${epoch + 1} loss ${loss.toFixed(4)} ${rate.toFixed(0)} samples/s ETA ${eta.toFixed(0)}s\n`,
      );
    },
    log(line) {
      process.stderr.write(line + '\n');
    },
    stop() {},
  };
}
