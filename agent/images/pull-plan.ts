import type { ImageReference } from '../core/image-reference.js';
import type { ResolvedManifest } from './registry-client.js';

export interface PullPlan {
  image: string;
  digest: string;
  source: 'mirror' | 'origin';
  /** Layers of the image, and how many of them the engine already has. */
  layers: number;
  present: number;
  /** Compressed bytes still to download, and of the whole image. */
  bytesToDownload: number;
  bytesTotal: number;
  /** Free bytes on Docker's disk; null when the engine's data root could not be measured. */
  diskFree: number | null;
  /** What the pull needs free: the download and its extraction, plus the reserve. */
  diskRequired: number;
  fits: boolean;
  missing: Array<{ digest: string; size: number }>;
  /**
   * images.verify: null when no rule covers the image, else the digest a trusted signature
   * covers and the key that made it (an image that does not verify has no plan: unsigned_image).
   */
  verified?: { digest: string; key: string } | null;
}

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
