import { join } from 'node:path';
import { AgentError, toErrorInfo } from '../core/errors.js';
import { readJsonFile, writeJsonFile } from '../state/json-file.js';

/**
 * Containers an operator stopped by command: left stopped (the reconcile loop would otherwise
 * start them again) until started by command or named by a newer desired state. Kept on disk,
 * so a stop survives an agent restart as it survives in Docker.
 */
export class HoldStore {
  private readonly file: string;
  private held = new Set<string>();

  constructor(dir: string) {
    this.file = join(dir, 'holds.json');
  }

  get names(): ReadonlySet<string> {
    return this.held;
  }

  load(): void {
    const names = readJsonFile<unknown>(this.file);
    this.held = new Set(Array.isArray(names) ? names.filter((n): n is string => typeof n === 'string') : []);
  }

  hold(name: string): void {
    this.held.add(name);
  }

  release(name: string): void {
    this.held.delete(name);
  }

  async save(): Promise<void> {
    writeJsonFile(this.file, [...this.held].sort());
  }

  /**
   * A hold set or released by command: the file first, memory only once it is written. A full
   * disk refuses the command and changes nothing, so no later reconcile acts on a hold the
   * command answered as not made. Returns whether anything changed.
   */
  async set(name: string, held: boolean): Promise<boolean> {
    if (this.held.has(name) === held) return false;
    const next = new Set(this.held);
    if (held) next.add(name);
    else next.delete(name);
    try {
      writeJsonFile(this.file, [...next].sort());
    } catch (err) {
      const { code, message } = toErrorInfo(err, 'state_write_failed');
      const what = held ? `the stop of ${name}` : `the start of ${name}`;
      throw new AgentError(code, `could not record ${what} in ${this.file} (${message}); nothing was changed`, {
        cause: err,
      });
    }
    this.held = next;
    return true;
  }
}
