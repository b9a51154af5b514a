import { nearest } from '../config/key-suggestions.js';

/** A command line's options: those that take a value (`--broker URL`) and those that are on or off (`--json`). */
export interface OptionTable {
  valued: ReadonlySet<string>;
  flags: ReadonlySet<string>;
}

/**
 * Splits `--name value`, `--name=value` and `--flag` from positional arguments, by the table.
 * A mistyped option is a usage error (`usage(message)`), never ignored, with the nearest known
 * name: `list --ofline` silently listing every robot, or `update --froce` quietly waiting for the
 * window, would act on what the operator did not ask.
 */
export function splitOptions(
  argv: string[],
  table: OptionTable,
  usage: (message: string) => Error,
): { flags: Record<string, string | true>; args: string[] } {
  const flags: Record<string, string | true> = {};
  const args: string[] = [];
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      args.push(a);
      continue;
    }
    // A flag never takes a value.
    const eq = a.indexOf('=');
    const name = eq > 2 ? a.slice(2, eq) : a.slice(2);
    if (table.valued.has(name)) {
      const value = eq > 2 ? a.slice(eq + 1) : argv[i + 1];
      if (value === undefined) throw usage(`--${name} needs a value`);
      flags[name] = value;
      if (eq <= 2) i += 1;
    } else if (table.flags.has(name) && eq <= 2) flags[name] = true;
    else if (table.flags.has(name)) throw usage(`--${name} takes no value`);
    else {
      const near = nearest(name, [...table.valued, ...table.flags]);
      throw usage(`unknown option --${name}${near ? ` (did you mean --${near}?)` : ''}`);
    }
  }
  return { flags, args };
}
