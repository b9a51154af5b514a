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
  /** Work saved before an update or restore: a digest of its content, so a retry reuses it (work-identity.ts). */
  work: 'io.robot-agent.snapshot.work',
} as const;

/**
 * What the engine cannot tell about a snapshot: that this robot committed it (labels anyone can
 * set; this file only the agent writes), and where it was pushed and saved. Everything else is
 * read from the engine (labels, sizes), so this is the only snapshot state the agent keeps.
 */
export class SnapshotRecords {
  private readonly file: string;
  private pushed = new Map<string, string>();
  private saved = new Map<string, string>();
  /** Image ids this robot committed as snapshots: what restore trusts outside images.allow. */
  private committed = new Set<string>();

  constructor(dir: string) {
    this.file = join(dir, 'snapshots.json');
  }

  load(): void {
    const doc = readJsonFile<{ pushed?: Record<string, string>; saved?: Record<string, string>; committed?: unknown }>(
      this.file,
    );
    this.pushed = new Map(Object.entries(doc?.pushed ?? {}));
    this.saved = new Map(Object.entries(doc?.saved ?? {}));
    const committed = Array.isArray(doc?.committed) ? doc.committed : [];
    this.committed = new Set(committed.filter((id): id is string => typeof id === 'string'));
  }

  markPushed(imageId: string, ref: string): void {
    this.pushed.set(imageId, ref);
  }

  markCommitted(imageId: string): void {
    this.committed.add(imageId);
  }

  /** An id recorded and then not kept (its image was removed). */
  forget(imageId: string): void {
    this.committed.delete(imageId);
  }

  committedHere(imageId: string): boolean {
    return this.committed.has(imageId);
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
      for (const id of [...this.committed]) if (!present.has(id)) this.committed.delete(id);
    }
    writeJsonFile(this.file, {
      pushed: Object.fromEntries(this.pushed),
      saved: Object.fromEntries(this.saved),
      committed: [...this.committed],
    });
  }
}
