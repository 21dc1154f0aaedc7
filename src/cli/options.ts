// Option parsing shared by the CLI commands: numbers parsed strictly, with errors that name the option,
// the value and what is allowed; and the final `--json` line.

import { Option } from 'commander';
import { UsageError } from '../util/errors.js';

/** Parses a number, rejecting anything that is not entirely one ("12abc", "", "NaN"). */
export function parseNumberOption(flag: string): (value: string) => number {
  return (value: string) => {
    const trimmed = value.trim();
    const parsed = trimmed === '' ? NaN : Number(trimmed);
    if (!Number.isFinite(parsed)) throw new UsageError(`${flag} must be a number, got '${value}'`);
    return parsed;
  };
}

/** A numeric option with a strict parser. */
export function numberOption(flags: string, description: string): Option {
  const flag = flags.split(/[ ,]+/).find((part) => part.startsWith('--')) ?? flags;
  return new Option(flags, description).argParser(parseNumberOption(flag));
}

/** Prints the one JSON object that ends stdout under `--json`. */
export function printJsonResult(result: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(result) + '\n');
}

/** Rounds for display without hiding precision in JSON. */
export function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(2)} %`;
}
