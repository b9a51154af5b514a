import { join } from 'node:path';
import { readJsonFile } from '../state/json-file.js';
import { ReplaceJournal, type ReplaceEntry } from './replace-journal.js';

/** What an agent before the one replacement transaction wrote for a recreate. */
interface EarlierEntry {
  container: string;
  step: 'stopping' | 'renaming' | 'creating' | 'starting' | 'removing';
  oldContainerId: string;
  aside: string;
  newContainerId?: string;
  startedAt: string;
}

/**
 * The recreate journal: recreate-journal.json in state.dir, a replacement transaction's journal
 * (replace-journal.ts). A journal an earlier agent left in its own shape is read as one.
 */
export class RecreateJournal extends ReplaceJournal {
  constructor(dir: string) {
    super(join(dir, 'recreate-journal.json'));
  }

  override read(): ReplaceEntry | null {
    const entry = super.read();
    if (entry) return entry;
    const earlier = readJsonFile<EarlierEntry>(this.file);
    if (!earlier || typeof earlier.oldContainerId !== 'string' || typeof earlier.aside !== 'string') return null;
    return {
      container: earlier.container,
      step: earlier.step,
      from: { image: '', imageId: '', containerId: earlier.oldContainerId },
      to: { image: '' },
      aside: earlier.aside,
      ...(earlier.newContainerId ? { newContainerId: earlier.newContainerId } : {}),
      startedAt: earlier.startedAt,
    };
  }
}
