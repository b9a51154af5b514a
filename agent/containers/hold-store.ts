import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

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
    try {
      const names = JSON.parse(readFileSync(this.file, 'utf8')) as unknown;
      this.held = new Set(Array.isArray(names) ? names.filter((n): n is string => typeof n === 'string') : []);
    } catch {
      this.held = new Set();
    }
  }

  hold(name: string): void {
    this.held.add(name);
  }

  release(name: string): void {
    this.held.delete(name);
  }

  async save(): Promise<void> {
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, JSON.stringify([...this.held].sort()), { mode: 0o600 });
    await rename(tmp, this.file);
  }
}
