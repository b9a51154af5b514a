import { createHash } from 'node:crypto';
import type { ContainerChange } from '../docker/container-changes.js';
import type { Engine } from '../docker/engine.js';

/**
 * Beyond these, a container's work is not read to be identified (it is committed again
 * instead): reading it costs about what committing it does, and a retry of the same update is
 * already held back by update.retry.
 */
export const IDENTITY_LIMITS = { paths: 2000, bytes: 64 * 1024 * 1024 } as const;

/**
 * A digest of the work in a container's writable layer, content and all: what each changed path
 * is (its tar entries, so name, mode, size, mtime and bytes; a deletion by its name). Two saves
 * with the same digest hold the same work, so the second may reuse the first. The changes'
 * paths and sizes alone are not enough: an edit that keeps a file's size would be lost.
 * null when the work is too large to read (IDENTITY_LIMITS) or a path cannot be read.
 */
export async function workDigest(
  engine: Pick<Engine, 'containerArchive'>,
  containerId: string,
  changes: ContainerChange[],
  sizeRw: number,
): Promise<string | null> {
  if (changes.length === 0 || changes.length > IDENTITY_LIMITS.paths || sizeRw > IDENTITY_LIMITS.bytes) return null;
  // Only the leaves: a changed directory's archive would hold its unchanged files too.
  const parents = new Set<string>();
  for (const { Path } of changes) {
    for (let i = Path.lastIndexOf('/'); i > 0; i = Path.lastIndexOf('/', i - 1)) parents.add(Path.slice(0, i));
  }
  const leaves = changes
    .filter((c) => !parents.has(c.Path))
    .sort((a, b) => (a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0));
  const hash = createHash('sha256');
  let read = 0;
  try {
    for (const change of leaves) {
      hash.update(`${change.Kind} ${change.Path}\n`);
      // Kind 2: deleted, nothing to read.
      if (change.Kind === 2) continue;
      const stream = await engine.containerArchive(containerId, change.Path);
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        read += chunk.length;
        // The archive may hold more than SizeRw said (a file grew meanwhile): stop reading.
        if (read > IDENTITY_LIMITS.bytes * 2) {
          (stream as unknown as { destroy?: () => void }).destroy?.();
          return null;
        }
        hash.update(chunk);
      }
    }
  } catch {
    return null;
  }
  return hash.digest('hex');
}
