import { join } from 'node:path';
import { readJsonFile, writeJsonFile } from '../state/json-file.js';

/** Labels every snapshot carries: where it came from, so any robot or registry can tell. */
export const SNAPSHOT_LABELS = {
  robot: 'io.robot-agent.snapshot.robot',
  container: 'io.robot-agent.snapshot.container',
  sourceImage: 'io.robot-agent.snapshot.source-image',
  sourceDigest: 'io.robot-agent.snapshot.source-digest',
  created: 'io.robot-agent.snapshot.created',
  devices: 'io.robot-agent.snapshot.devices',
  /** What the container's changes were when it was taken: the schedule skips an unchanged one. */
  fingerprint: 'io.robot-agent.snapshot.fingerprint',
} as const;

/**
 * What the engine cannot tell about a snapshot: where it was pushed and saved. Everything else
 * is read from the engine (labels, sizes), so this is the only snapshot state the agent keeps.
 */
export class SnapshotRecords {
  private readonly file: string;
  private pushed = new Map<string, string>();
  private saved = new Map<string, string>();

  constructor(dir: string) {
    this.file = join(dir, 'snapshots.json');
  }

  load(): void {
    const doc = readJsonFile<{ pushed?: Record<string, string>; saved?: Record<string, string> }>(this.file);
    this.pushed = new Map(Object.entries(doc?.pushed ?? {}));
    this.saved = new Map(Object.entries(doc?.saved ?? {}));
  }

  markPushed(imageId: string, ref: string): void {
    this.pushed.set(imageId, ref);
  }

  markSaved(imageId: string, file: string): void {
    this.saved.set(imageId, file);
  }

  pushedAs(imageId: string): string | null {
    return this.pushed.get(imageId) ?? null;
  }

  savedTo(imageId: string): string | null {
    return this.saved.get(imageId) ?? null;
  }

  /** Forgets images that are gone, then writes. */
  async save(present?: Set<string>): Promise<void> {
    if (present) {
      for (const id of [...this.pushed.keys()]) if (!present.has(id)) this.pushed.delete(id);
      for (const id of [...this.saved.keys()]) if (!present.has(id)) this.saved.delete(id);
    }
    writeJsonFile(this.file, { pushed: Object.fromEntries(this.pushed), saved: Object.fromEntries(this.saved) });
  }
}
