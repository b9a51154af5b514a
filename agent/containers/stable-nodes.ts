import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AgentError } from '../core/errors.js';
import { splitDev, type NumberedMapping } from './device-mappings.js';

const run = promisify(execFile);

/**
 * Device nodes on the host at fixed paths (<state.dir>/dev/<key>) that always carry a device's
 * current numbers. Containers are created with these as --device sources: Docker reads a
 * source's numbers at every start, so a container restarted after a replug (or at boot, before
 * the agent runs: the directory is on disk, not in /run) gets the device where a udev path
 * would have gone stale and failed the start. A node whose device is gone keeps its last numbers.
 */
export class StableNodes {
  constructor(private readonly dir: string) {}

  pathOf(key: string): string {
    return join(this.dir, key);
  }

  /** Makes or fixes the node of each key; returns the keys whose node changed. */
  async sync(mappings: NumberedMapping[]): Promise<string[]> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const changed: string[] = [];
    const seen = new Set<string>();
    for (const m of mappings) {
      if (seen.has(m.key)) continue;
      seen.add(m.key);
      const path = this.pathOf(m.key);
      if (this.numbersAt(path) === `${m.major}:${m.minor}`) continue;
      rmSync(path, { force: true });
      try {
        // Node has no mknod(2); coreutils' is on every robot. The mode is the device's own, as
        // Docker copies it into the container; the 0700 directory keeps other host users out.
        await run('mknod', ['-m', m.mode.toString(8), path, 'c', String(m.major), String(m.minor)]);
      } catch (err) {
        throw new AgentError(
          'stable_node_failed',
          `cannot make the device node ${path} (${m.major}:${m.minor}): ${(err as Error).message.trim()}`,
        );
      }
      changed.push(m.key);
    }
    return changed;
  }

  private numbersAt(path: string): string | undefined {
    try {
      const s = statSync(path);
      if (!s.isCharacterDevice()) return undefined;
      const { major, minor } = splitDev(s.rdev);
      return `${major}:${minor}`;
    } catch {
      return undefined;
    }
  }
}
