import { join } from 'node:path';
import { ReplaceJournal, type ReplaceEntry, type ReplaceStep } from '../containers/replace-journal.js';

/** A step of an update's swap: the replacement transaction's (replace-journal.ts). */
export type SwapStep = ReplaceStep;

/** Everything recovery needs to finish or undo a swap the agent did not live to complete. */
export type JournalEntry = ReplaceEntry;

/** The update journal: update-journal.json in state.dir, replaced whole before each swap step. */
export class UpdateJournal extends ReplaceJournal {
  constructor(dir: string) {
    super(join(dir, 'update-journal.json'));
  }
}
