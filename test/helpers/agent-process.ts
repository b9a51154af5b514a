import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../agent/core/package-root.js';
import { scaled } from './time-scale.js';

export interface AgentProcess {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Exit code (or the signal's name), waiting at most ms. */
  exited(ms?: number): Promise<number | string>;
  /** Log lines (JSON on stdout) that parse. */
  logs(): Array<Record<string, unknown>>;
  kill(signal?: NodeJS.Signals): void;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Runs the compiled CLI exactly as systemd would, with its output collected. */
export function spawnAgent(args: string[], env: NodeJS.ProcessEnv = {}): AgentProcess {
  const child = spawn(process.execPath, [join(packageRoot(), 'build', 'agent', 'main.js'), ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  collectLines(child.stdout!, stdout);
  collectLines(child.stderr!, stderr);
  const exit = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  return {
    child,
    stdout,
    stderr,
    exited: (ms = 10_000) =>
      Promise.race([
        exit,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`agent did not exit within ${scaled(ms)} ms`)), scaled(ms)).unref(),
        ),
      ]),
    logs: () =>
      stdout.flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    kill: (signal = 'SIGTERM') => {
      child.kill(signal);
    },
  };
}

function collectLines(stream: NodeJS.ReadableStream, into: string[]): void {
  let rest = '';
  stream.on('data', (chunk: Buffer) => {
    rest += chunk.toString('utf8');
    const lines = rest.split('\n');
    rest = lines.pop() ?? '';
    into.push(...lines);
  });
  stream.on('end', () => {
    if (rest) into.push(rest);
  });
}
