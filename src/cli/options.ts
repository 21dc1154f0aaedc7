// Option parsing shared by the CLI commands: commander options built from the options table
// (src/options/table.ts), numbers parsed strictly with errors that name the option, the value and what
// is allowed; and the final `--json` line.

import { Option, type Command } from 'commander';
import { describeRange, optionsFor, type CommandName, type OptionSpec } from '../options/table.js';
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

/** The help line of a table entry: its text, its choices, and a default commander does not show itself. */
function helpOf(spec: OptionSpec): string {
  const allowed =
    spec.type === 'choice'
      ? `: ${spec.choices.join(', ')}`
      : spec.type === 'number' || spec.type === 'integer'
        ? `; ${describeRange(spec)}`
        : '';
  const defaultText = spec.taskDefault !== undefined ? 'per task' : spec.defaultText;
  const line = `${spec.help}${allowed}${defaultText !== undefined ? ` (default: ${defaultText})` : ''}`;
  return line.replaceAll('`', '');
}

/**
 * The commander option of a table entry. Numbers get the strict parser; choices are checked by the
 * command itself (`checkOptionChoice`), so a bad one gets the same message from the CLI and the library.
 */
export function tableOption(spec: OptionSpec): Option {
  if (spec.type === 'boolean') return new Option(spec.flag, helpOf(spec)).default(false);
  const option = new Option(`${spec.flag} <${spec.placeholder}>`, helpOf(spec));
  if (spec.type === 'number' || spec.type === 'integer') option.argParser(parseNumberOption(spec.flag));
  if (spec.default !== undefined) option.default(spec.default);
  if (spec.required) option.makeOptionMandatory();
  return option;
}

/** Adds every option the table gives `name` to `command`, in table order. */
export function addTableOptions(command: Command, name: CommandName): Command {
  for (const [, spec] of optionsFor(name)) command.addOption(tableOption(spec));
  return command;
}

/** Prints the one JSON object that ends stdout under `--json`. */
export function printJsonResult(result: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(result) + '\n');
}

/** Rounds for display without hiding precision in JSON. */
export function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(2)} %`;
}
