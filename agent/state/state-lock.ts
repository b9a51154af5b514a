import { spawnSync } from 'node:child_process';
import { closeSync, constants, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../core/errors.js';

/** In state.dir; it stays there between runs: only the kernel's lock on it says "taken". */
export const STATE_LOCK_FILE = 'agent.lock';

export interface StateLockOptions {
  /** util-linux flock(1); Node has no flock of its own. */
  flockPath?: string;
  pid?: number;
  version?: string;
  now?: () => Date;
}

export interface StateLock {
  readonly file: string;
  /** Drops the lock before exit (the kernel drops it anyway when the process ends, even killed). */
  release(): void;
}

interface Holder {
  pid?: number;
  startedAt?: string;
  version?: string;
}

/**
 * Takes the robot: an exclusive flock on state.dir/agent.lock, held for the life of the process.
 * Two agents on one state.dir would share one robot's identity (and MQTT client id) and knock
 * each other off the broker every second; the second one refuses to start instead, naming the
 * process that holds the robot.
 *
 * flock(1) locks the descriptor it inherits as its fd 3. A flock belongs to the open file
 * description, which the agent keeps open after flock(1) exits, so the lock lives exactly as long
 * as the agent: a crash or SIGKILL releases it, and no stale PID file can block a restart.
 */
export function lockStateDir(dir: string, options: StateLockOptions = {}): StateLock {
  const file = join(dir, STATE_LOCK_FILE);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
  } catch (err) {
    throw new AgentError('state_dir', `cannot create the state directory ${dir}: ${errno(err)}`);
  }
  let fd: number;
  try {
    // Not truncated on open: until the lock is ours, the content names the holder.
    fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o640);
  } catch (err) {
    throw new AgentError('state_lock', `cannot open the lock file ${file}: ${errno(err)}`);
  }
  const flock = spawnSync(options.flockPath ?? 'flock', ['--exclusive', '--nonblock', '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
    timeout: 10_000,
  });
  if (flock.error !== undefined || (flock.status !== 0 && flock.status !== 1)) {
    closeSync(fd);
    const why = flock.error ? errno(flock.error) : flock.stderr?.toString().trim() || `exit ${String(flock.status)}`;
    throw new AgentError(
      'state_lock',
      `cannot lock ${file} with flock(1) (${why}); install util-linux, which provides it`,
    );
  }
  if (flock.status === 1) {
    closeSync(fd);
    throw heldError(dir, readHolder(file));
  }
  const holder: Holder = {
    pid: options.pid ?? process.pid,
    startedAt: (options.now?.() ?? new Date()).toISOString(),
    ...(options.version ? { version: options.version } : {}),
  };
  ftruncateSync(fd, 0);
  writeSync(fd, `${JSON.stringify(holder)}\n`, 0);
  let held = true;
  return {
    file,
    release() {
      if (!held) return;
      held = false;
      closeSync(fd);
    },
  };
}

function heldError(dir: string, holder: Holder): AgentError {
  const who =
    holder.pid === undefined
      ? 'another robot agent'
      : `another robot agent (PID ${holder.pid}${holder.startedAt ? `, started ${holder.startedAt}` : ''})`;
  const stop = holder.pid === undefined ? 'stop it' : `stop it (systemctl stop robot-agent, or kill ${holder.pid})`;
  return new AgentError(
    'state_dir_locked',
    `${who} is already running on the state directory ${dir}: two agents would drive one robot and knock each ` +
      `other off the broker. ${stop}, or give this one its own state.dir (ROBOT_AGENT_STATE_DIR)`,
    { details: { dir, ...holder } },
  );
}

/** What the holder wrote; it may be mid-write or from an older agent, so anything odd is "unknown". */
function readHolder(file: string): Holder {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null) return {};
    const { pid, startedAt } = parsed as Record<string, unknown>;
    return {
      ...(Number.isInteger(pid) ? { pid: pid as number } : {}),
      ...(typeof startedAt === 'string' ? { startedAt } : {}),
    };
  } catch {
    return {};
  }
}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}
