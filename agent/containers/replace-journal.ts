import { readJsonFile, removeJsonFile, writeJsonFile } from '../state/json-file.js';

/**
 * The steps of a replacement; each is written to the journal before it is taken. `preparing`
 * (an update saving the old container's work) comes before anything changes, so a state.dir
 * that cannot take the journal refuses with nothing changed. Then, for a replacement that
 * creates ahead (updates, restores): `creating` (the new container, under the temporary name
 * `next`), `stopping` (with its id; covers the stop and the start, taken at once with no write
 * between), `renaming` (old aside, new to the name). For a recreate that commits the old
 * container's changes: `stopping`, `renaming` (old aside), `creating` (under the name),
 * `starting`. After the new container started, an update goes through `verifying` to
 * `verified`; a recreate (no verification) goes to `removing`. Either of those two is the point
 * of no return: the old container goes. Before it, recovery undoes whatever was done by the
 * containers' ids and names, whatever the order, so an earlier agent's journal (no `next`)
 * settles the same way, and an earlier agent settles this one's (it removes `newContainerId`)
 * but for a crash during the create itself, which could leave a stopped `<name>-next-*`.
 */
export const REPLACE_STEPS = [
  'preparing',
  'stopping',
  'renaming',
  'creating',
  'starting',
  'verifying',
  'verified',
  'removing',
  'rolling-back',
] as const;
export type ReplaceStep = (typeof REPLACE_STEPS)[number];

/** Everything recovery needs to finish or undo a replacement the agent did not live to complete. */
export interface ReplaceEntry {
  container: string;
  step: ReplaceStep;
  from: { image: string; imageId: string; containerId: string };
  to: { image: string };
  /** The name the old container is kept under while its replacement is made. */
  aside: string;
  /** The temporary name the new container is created under, before the old one stops. */
  next?: string;
  newContainerId?: string;
  /** The snapshot holding the old container's work, when it had changes: what a rollback returns to. */
  saved?: { image: string; imageId: string };
  requestId?: string;
  startedAt: string;
}

/** A replacement journal: one file in state.dir, replaced whole before each step (json-file.ts). */
export class ReplaceJournal {
  constructor(readonly file: string) {}

  read(): ReplaceEntry | null {
    const entry = readJsonFile<ReplaceEntry>(this.file);
    const valid = entry && typeof entry.container === 'string' && typeof entry.aside === 'string';
    return valid && typeof entry.from?.containerId === 'string' ? entry : null;
  }

  write(entry: ReplaceEntry): void {
    writeJsonFile(this.file, entry);
  }

  clear(): void {
    removeJsonFile(this.file);
  }
}
