import { join } from 'node:path';
import { readJsonFile, writeJsonFile } from '../state/json-file.js';

export interface PreviousImage {
  image: string;
  imageId: string;
}

export interface RolledBack {
  image: string;
  imageId?: string;
  reason: string;
  at: string;
}

/**
 * What updates leave behind, per container: the image it ran before the last update (kept for
 * rollback, never pruned) and the target of an update that rolled back (not tried again until
 * someone asks for it anew). On disk, so a restart neither forgets the way back nor retries a
 * known-bad image in a loop.
 */
export class UpdateHistory {
  private readonly file: string;
  previous = new Map<string, PreviousImage>();
  rolledBack = new Map<string, RolledBack>();

  constructor(dir: string) {
    this.file = join(dir, 'update-history.json');
  }

  load(): void {
    const doc = readJsonFile<{ previous?: Record<string, PreviousImage>; rolledBack?: Record<string, RolledBack> }>(
      this.file,
    );
    this.previous = new Map(Object.entries(doc?.previous ?? {}));
    this.rolledBack = new Map(Object.entries(doc?.rolledBack ?? {}));
  }

  async save(): Promise<void> {
    writeJsonFile(this.file, {
      previous: Object.fromEntries(this.previous),
      rolledBack: Object.fromEntries(this.rolledBack),
    });
  }
}
