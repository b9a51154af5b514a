import { join } from 'node:path';
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
}
