// Errors a user can act on: bad options, bad data files, bad checkpoints.
//
// A `UsageError` is the user's mistake, not a bug: the CLI prints its one-line message (no stack trace)
// and exits with code 2. Messages name the option or file, the value and what is allowed.

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Throws unless `value` is a finite number in [min, max] (bounds inclusive unless stated). */
export function checkRange(
  option: string,
  value: number,
  min: number,
  max: number,
  { minExclusive = false, integer = false }: { minExclusive?: boolean; integer?: boolean } = {},
): number {
  const below = minExclusive ? value <= min : value < min;
  const kind = integer ? 'an integer' : 'a number';
  const lower = minExclusive ? `> ${min}` : `>= ${min}`;
  const upper = max === Infinity ? '' : ` and <= ${max}`;
  if (!Number.isFinite(value) || below || value > max || (integer && !Number.isInteger(value))) {
    throw new UsageError(`${option} must be ${kind} ${lower}${upper}, got ${String(value)}`);
  }
  return value;
}

/** Throws unless `value` is one of `allowed`. */
export function checkChoice<T extends string>(option: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`${option} must be one of ${allowed.join(', ')}, got '${value}'`);
  }
  return value as T;
}

/**
 * A run stopped by SIGINT or SIGTERM after saving its position: the CLI prints the one-line message and
 * exits with the shell's convention for the signal, 128 + its number (130 for SIGINT, 143 for SIGTERM).
 */
export class InterruptedError extends Error {
  readonly exitCode: number;

  constructor(
    readonly signal: 'SIGINT' | 'SIGTERM',
    message: string,
  ) {
    super(message);
    this.name = 'InterruptedError';
    this.exitCode = signal === 'SIGINT' ? 130 : 143;
  }
}
