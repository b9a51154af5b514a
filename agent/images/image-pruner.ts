import { engineMessage, type Engine } from '../docker/engine.js';
import type { ImageSummary } from '../state/types.js';
import { isAllowed, parseImageReference } from '../core/image-reference.js';

export interface PruneStep {
  imageId: string;
  tags: string[];
  size: number;
}

/**
 * Which images prune removes (pure): only images the config manages, never one a container
 * uses, never one protected (a rollback's), and the newest `keep` of each repository stay.
 */
export function planPrune(o: {
  images: ImageSummary[];
  managed: string[];
  keep: number;
  inUse: ReadonlySet<string>;
  protectedIds: ReadonlySet<string>;
}): PruneStep[] {
  const byRepository = new Map<string, ImageSummary[]>();
  for (const image of o.images) {
    const repositories = new Set(
      image.tags.flatMap((tag) => {
        try {
          const ref = parseImageReference(tag);
          return isAllowed(ref, o.managed) ? [ref.familiarRepository] : [];
        } catch {
          return [];
        }
      }),
    );
    for (const repository of repositories)
      byRepository.set(repository, [...(byRepository.get(repository) ?? []), image]);
  }
  const keepIds = new Set<string>();
  const candidates = new Map<string, ImageSummary>();
  for (const images of byRepository.values()) {
    const newestFirst = [...images].sort((a, b) => compareCreated(b.created, a.created));
    newestFirst.slice(0, o.keep).forEach((i) => keepIds.add(i.id));
    newestFirst.slice(o.keep).forEach((i) => candidates.set(i.id, i));
  }
  return (
    [...candidates.values()]
      .filter((i) => !keepIds.has(i.id) && !o.inUse.has(i.id) && !o.protectedIds.has(i.id))
      // Only the names the config manages are taken away; an image that keeps another name stays.
      .map((i) => ({ imageId: i.id, tags: i.tags.filter((t) => managedTag(t, o.managed)), size: i.uniqueSize }))
  );
}

function managedTag(tag: string, managed: string[]): boolean {
  try {
    return isAllowed(parseImageReference(tag), managed);
  } catch {
    return false;
  }
}

/**
 * Engine timestamps carry up to nine fraction digits, and whole seconds have none: compared as
 * strings, 12:00:00Z would sort after 12:00:00.5Z. Pad the fraction first.
 */
export function compareCreated(a: string, b: string): number {
  const norm = (t: string) =>
    t.replace(/(?:\.(\d+))?Z$/, (_m, frac: string | undefined) => `.${(frac ?? '').padEnd(9, '0')}Z`);
  return norm(a).localeCompare(norm(b));
}

export async function runPrune(
  engine: Pick<Engine, 'removeImage'>,
  steps: PruneStep[],
): Promise<{ removed: PruneStep[]; failed: Array<PruneStep & { error: string }> }> {
  const removed: PruneStep[] = [];
  const failed: Array<PruneStep & { error: string }> = [];
  for (const step of steps) {
    try {
      for (const tag of step.tags) await engine.removeImage(tag, { force: false });
      removed.push(step);
    } catch (err) {
      // The engine's own sentence ("image is being used by running container ..."), not the HTTP wrapper.
      failed.push({ ...step, error: engineMessage(err) });
    }
  }
  return { removed, failed };
}
