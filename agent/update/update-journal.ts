import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The steps of a swap, in order. Each is written before it is taken. */
export const SWAP_STEPS = ['stopping', 'renaming', 'creating', 'starting', 'verifying', 'verified', 'rolling-back'] as const;
export type SwapStep = (typeof SWAP_STEPS)[number];

/** Everything recovery needs to finish or undo a swap the agent did not live to complete. */
export interface JournalEntry {
  container: string;
  step: SwapStep;
  from: { image: string; imageId: string; containerId: string };
  to: { image: string };
  /** The name the old container is kept under during the swap. */
  aside: string;
  newContainerId?: string;
  requestId?: string;
  startedAt: string;
}

/**
 * The update journal: one file in state.dir, replaced atomically (temp file, fsync, rename,
 * fsync of the directory) so a power cut leaves either the previous entry or the new one,
 * never half of one.
 */
export class UpdateJournal {
  readonly file: string;

  constructor(dir: string) {
    this.file = join(dir, 'update-journal.json');
  }

  read(): JournalEntry | null {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8')) as JournalEntry;
    } catch {
      return null;
    }
  }

  write(entry: JournalEntry): void {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(entry));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    syncDir(dirname(this.file));
  }

  clear(): void {
    rmSync(this.file, { force: true });
    syncDir(dirname(this.file));
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
