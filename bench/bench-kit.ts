import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { packageRoot } from '../agent/core/package-root.js';

/** What every benchmark here shares: figures from samples, polling, starting the agent, and how a bench ends. */

/** The p-th percentile of ascending samples (nearest rank). */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function median(samples: number[]): number {
  return [...samples].sort((a, b) => a - b)[Math.floor(samples.length / 2)]!;
}

/** Polls check every few milliseconds until it returns a value; throws after ms. */
export async function pollFor<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Runs a bench and exits: 0 when it printed its figures, 1 with the error otherwise. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

/**
 * The agent as systemd runs it (the compiled CLI, `run --config`), from a config document written
 * to <dir>/config.yaml. Node options (e.g. --inspect) go before the script; output is ignored
 * unless stdio says otherwise.
 */
export function spawnBenchAgent(
  dir: string,
  config: Record<string, unknown>,
  o: { env?: NodeJS.ProcessEnv; nodeOptions?: string[]; stdio?: StdioOptions } = {},
): ChildProcess {
  const file = join(dir, 'config.yaml');
  writeFileSync(file, stringify(config));
  const root = packageRoot();
  const main = join(root, 'build', 'agent', 'main.js');
  return spawn(process.execPath, [...(o.nodeOptions ?? []), main, 'run', '--config', file], {
    cwd: root,
    stdio: o.stdio ?? 'ignore',
    ...(o.env ? { env: o.env } : {}),
  });
}
