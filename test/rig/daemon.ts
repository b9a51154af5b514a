import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, closeSync } from 'node:fs';

export interface Daemon {
  child: ChildProcess;
  logFile: string;
  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

const alive = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of alive) {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }
});

async function waitForGroupGone(pgid: number): Promise<void> {
  for (let i = 0; i < 100; i += 1) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts a rig service with its output in a log file (mocha's output stays clean) and waits
 * until ready() says it answers, failing with the log's tail when it never does.
 */
export async function startDaemon(o: {
  name: string;
  cmd: string;
  args: string[];
  logFile: string;
  ready: () => Promise<boolean>;
  timeoutMs?: number;
  /** Own process group, killed whole: dockerd's containerd must die with it, as under systemd. */
  group?: boolean;
}): Promise<Daemon> {
  const fd = openSync(o.logFile, 'a');
  const child = spawn(o.cmd, o.args, { stdio: ['ignore', fd, fd], detached: o.group === true });
  closeSync(fd);
  alive.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      alive.delete(child);
      resolve();
    }),
  );
  const signal = (sig: NodeJS.Signals) => {
    try {
      if (o.group && child.pid) process.kill(-child.pid, sig);
      else child.kill(sig);
    } catch {
      // Already gone.
    }
  };
  const stop = async (graceMs = 5000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    signal('SIGKILL');
    await exited;
    // The group's other members (containerd) go with the same signal; wait until they have.
    if (o.group && child.pid) await waitForGroupGone(child.pid);
  };
  const deadline = Date.now() + (o.timeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${o.name} exited with ${child.exitCode}:\n${tail(o.logFile)}`);
    if (await o.ready().catch(() => false)) break;
    if (Date.now() > deadline) {
      await kill();
      throw new Error(`${o.name} did not become ready:\n${tail(o.logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, logFile: o.logFile, stop, kill };
}

export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
