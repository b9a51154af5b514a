import type { ImageReference } from '../core/image-reference.js';
import type { ResolvedManifest } from './registry-client.js';
import type { CommandResult } from '../commands/command.js';

/** What `plan` answers (docs/schemas/commands/plan.json, as the command map types it). */
export type PullPlan = CommandResult<'plan'>;

/**
 * What a pull will cost, before a byte moves (pure). A layer is present when its diff id is in
 * some local image's RootFS, which is how the engine decides too.
 */
export function planPull(o: {
  ref: ImageReference;
  manifest: ResolvedManifest;
  localLayers: ReadonlySet<string>;
  diskFree: number | null;
  diskFactor: number;
  diskReserve: number;
}): PullPlan {
  const missing = o.manifest.layers.filter((l) => !o.localLayers.has(l.diffId));
  const bytesToDownload = missing.reduce((sum, l) => sum + l.size, 0);
  const diskRequired = bytesToDownload === 0 ? 0 : Math.ceil(bytesToDownload * o.diskFactor) + o.diskReserve;
  return {
    image: o.ref.familiar,
    digest: o.manifest.digest,
    source: o.manifest.source,
    layers: o.manifest.layers.length,
    present: o.manifest.layers.length - missing.length,
    bytesToDownload,
    bytesTotal: o.manifest.layers.reduce((sum, l) => sum + l.size, 0),
    diskFree: o.diskFree,
    diskRequired,
    fits: o.diskFree === null || o.diskFree >= diskRequired,
    missing: missing.map((l) => ({ digest: l.digest, size: l.size })),
  };
}
