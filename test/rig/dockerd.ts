import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type Daemon } from './daemon.js';
import { httpStatus } from './net.js';

export interface DockerRig {
  socketPath: string;
  dataRoot: string;
  execRoot: string;
  /** The docker CLI's arguments to reach this engine: ['-H', 'unix://...']. */
  cliArgs: string[];
  /** Stops the engine (SIGKILL when kill) and starts it again on the same socket and dirs. */
  restart(o?: { kill?: boolean; downMs?: number }): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/**
 * A real dockerd of our own: own socket, data root and exec root under dir, no bridge and no
 * iptables (it must not touch the machine's network), overlay2 like the robots.
 */
export async function startDockerd(dir: string, o: { registryMirror?: string } = {}): Promise<DockerRig> {
  mkdirSync(dir, { recursive: true });
  const socketPath = join(dir, 'docker.sock');
  const dataRoot = join(dir, 'data');
  const execRoot = join(dir, 'exec');
  const args = [
    '--host',
    `unix://${socketPath}`,
    '--data-root',
    dataRoot,
    '--exec-root',
    execRoot,
    '--pidfile',
    join(dir, 'docker.pid'),
    '--storage-driver',
    'overlay2',
    '--bridge',
    'none',
    '--iptables=false',
    '--ip-masq=false',
    '--ip-forward=false',
    ...(o.registryMirror ? ['--registry-mirror', o.registryMirror] : []),
  ];
  let daemon: Daemon | undefined;
  const start = async () => {
    daemon = await startDaemon({
      name: 'dockerd',
      cmd: 'dockerd',
      args,
      logFile: join(dir, 'dockerd.log'),
      ready: async () => (await httpStatus({ socketPath, path: '/_ping' })) === 200,
      timeoutMs: 60_000,
      group: true,
    });
  };
  const stop = async () => {
    await daemon?.stop(15_000);
    daemon = undefined;
  };
  await start();
  return {
    socketPath,
    dataRoot,
    execRoot,
    cliArgs: ['-H', `unix://${socketPath}`],
    start,
    stop,
    restart: async ({ kill = false, downMs = 0 } = {}) => {
      if (kill) {
        await daemon?.kill();
        // The killed containerd may linger as a zombie where PID 1 does not reap (containers),
        // and dockerd would take its pid file for a live containerd and wait on it forever.
        rmSync(join(execRoot, 'containerd', 'containerd.pid'), { force: true });
      } else {
        await stop();
      }
      daemon = undefined;
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
  };
}

/** Removes what a stopped dockerd leaves: its mounts first, so the tree can be deleted. */
export function removeDockerDir(dir: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((m): m is string => m !== undefined && m.startsWith(dir))
    .sort((a, b) => b.length - a.length);
  for (const mount of mounts) {
    try {
      execFileSync('umount', ['-l', mount], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
