import { join } from 'node:path';
import { readJsonFile, removeJsonFile, writeJsonFile } from '../state/json-file.js';

/**
 * The steps of a swap, in order. Each is written before it is taken; `preparing` before the old
 * container's work is saved, so a state.dir that cannot take the journal refuses the update
 * with nothing changed.
 */
export const SWAP_STEPS = [
  'preparing',
  'stopping',
  'renaming',
  'creating',
  'starting',
  'verifying',
  'verified',
  'rolling-back',
] as const;
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
  /** The snapshot holding the old container's work, when it had changes: what a rollback returns to. */
  saved?: { image: string; imageId: string };
  requestId?: string;
  startedAt: string;
}

/** The update journal: one file in state.dir, replaced whole before each swap step. */
export class UpdateJournal {
  readonly file: string;

  constructor(dir: string) {
    this.file = join(dir, 'update-journal.json');
  }

  read(): JournalEntry | null {
    return readJsonFile<JournalEntry>(this.file) ?? null;
  }

  write(entry: JournalEntry): void {
    writeJsonFile(this.file, entry);
  }

  clear(): void {
    removeJsonFile(this.file);
  }
}
