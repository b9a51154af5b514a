/**
 * The one convention of robot-agent and robot-fleet, and of every subcommand added to them:
 *
 * - `-h` / `--help` anywhere (`robot-fleet list --help`, `robot-agent run -h`) and `help [command]`
 *   print help on stdout and exit 0;
 * - `--version` prints the package version and exits 0;
 * - a usage error prints the problem and the usage on stderr and exits 2;
 * - help shows examples.
 *
 * A subcommand's help is cut from the program's usage text: its own line(s) (`  robot-fleet
 * [options] list ...` and the more indented lines under it) and the examples that use it. Adding a
 * subcommand is one usage line and one example; its help then follows.
 */

/** Exit codes shared by both programs for these cases. */
export const EXIT_OK = 0;
export const EXIT_USAGE = 2;

export type CliAction = { kind: 'help'; command?: string } | { kind: 'version' } | { kind: 'run' };

/**
 * What the arguments ask before any of them is parsed: help and version win over everything else,
 * so `robot-fleet send --help` helps rather than complaining that <robot> is missing.
 * commands lists the program's subcommands; the first of them in argv is the one helped.
 */
export function cliAction(argv: string[], commands: readonly string[]): CliAction {
  const command = argv.find((a) => commands.includes(a));
  if (argv.includes('-h') || argv.includes('--help')) return { kind: 'help', ...(command ? { command } : {}) };
  if (argv[0] === 'help') {
    const topic = argv[1];
    return { kind: 'help', ...(topic !== undefined && commands.includes(topic) ? { command: topic } : {}) };
  }
  if (argv.includes('--version')) return { kind: 'version' };
  return { kind: 'run' };
}

/**
 * The help of one subcommand, cut from the program's usage (see above), or the whole usage when
 * the command has no line of its own.
 */
export function commandHelp(usage: string, program: string, command: string | undefined): string {
  if (command === undefined) return usage;
  const lines = usage.split('\n');
  const starts = (line: string) => new RegExp(`^\\s*${program}( \\[options\\])? ${command}( |$)`).test(line);
  const block: string[] = [];
  for (let i = 0; i < lines.length; i += 1) {
    if (!starts(lines[i]!)) continue;
    block.push(lines[i]!.trim());
    const indent = lines[i]!.length - lines[i]!.trimStart().length;
    // Continuation lines: deeper than the command's own line, until a blank or a shallower one.
    for (let j = i + 1; j < lines.length; j += 1) {
      const line = lines[j]!;
      if (line.trim() === '' || line.length - line.trimStart().length <= indent) break;
      block.push(`  ${line.trim()}`);
    }
  }
  if (block.length === 0) return usage;
  const examples = lines.filter((l) => new RegExp(`^\\s*\\$ .*\\b${program}\\b.* ${command}( |$)`).test(l));
  return [
    `usage: ${block[0]}`,
    ...block.slice(1),
    ...(examples.length > 0 ? ['', 'examples:', ...examples] : []),
    '',
    `every option, the exit codes and the other commands: ${program} --help`,
  ].join('\n');
}

/**
 * The subcommands a usage text lists (`  robot-fleet [options] list ...` gives list): the usage
 * line is the one place a subcommand is declared.
 */
export function commandsIn(usage: string, program: string): string[] {
  const found = new Set<string>();
  for (const line of usage.split('\n')) {
    const match = new RegExp(`^\\s*${program}( \\[options\\])? ([a-z][a-z0-9-]*)`).exec(line);
    if (match) found.add(match[2]!);
  }
  return [...found];
}

/** The text of a usage error: the problem first, where the eye lands, then how to call it right. */
export function usageErrorText(program: string, message: string, usage: string, command?: string): string {
  return `${program}: ${message}\n\n${commandHelp(usage, program, command)}`;
}
