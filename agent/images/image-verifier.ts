import { join } from 'node:path';
import { AgentError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { readJsonFile, writeJsonFile } from '../state/json-file.js';
import { isAllowed, type ImageReference } from '../core/image-reference.js';
import { signatureTag, verifySignatures, type TrustedKey } from '../core/image-signature.js';
import type { SignatureStore } from './signature-store.js';

export interface VerifiedImage {
  /** The reference that was asked for (familiar form, with its tag). */
  image: string;
  /** The manifest digest the signature covers: what is pulled and run. */
  digest: string;
  /** repository@digest: what the container is created from, so a tag moved later changes nothing. */
  runReference: string;
  key: { id: string; file: string };
  at: string;
  /** The engine's id of the pulled image, once pulled. */
  imageId?: string;
}

/** A pattern without its tag: repo/*:v1 -> repo/* (a registry's :port stays). */
function repositoryPart(pattern: string): string {
  const slash = pattern.lastIndexOf('/');
  const colon = pattern.indexOf(':', slash + 1);
  return colon >= 0 ? pattern.slice(0, colon) : pattern;
}

/** The most images whose verification is remembered (the newest kept): a robot runs a handful. */
const MAX_RECORDS = 256;

/**
 * The agent's policy point for images (Docker 20.10 has none: content trust is off and retired).
 * For an image images.verify covers, it resolves the reference to its manifest digest, reads the
 * cosign signatures stored for that digest and accepts the image only when one, by a configured
 * key, names that digest and that repository. Callers then pull and run repository@digest. What
 * it verified is remembered (state.dir) by reference and by image id, for state and for the
 * containers created later from it.
 */
export class ImageVerifier {
  private readonly file: string;
  private records = new Map<string, VerifiedImage>();

  constructor(
    private readonly o: {
      rules: ReadonlyArray<{ pattern: string; keys: TrustedKey[] }>;
      signatures: SignatureStore;
      stateDir: string;
      logger: Logger;
      now?: () => Date;
    },
  ) {
    this.file = join(o.stateDir, 'verified-images.json');
    const doc = readJsonFile<{ images?: Record<string, VerifiedImage> }>(this.file);
    this.records = new Map(Object.entries(doc?.images ?? {}));
  }

  /** The keys images.verify trusts for this image, or undefined when no rule covers it. */
  keysFor(ref: ImageReference): TrustedKey[] | undefined {
    // A rule covers every tag and digest of the repositories it matches: a tag in its pattern is
    // ignored, so that repo@digest or another tag cannot slip past a rule written for one tag.
    const repository = { ...ref, tag: undefined, digest: undefined };
    const matching = this.o.rules.filter((r) => isAllowed(repository, [repositoryPart(r.pattern)]));
    if (matching.length === 0) return undefined;
    return matching.flatMap((r) => r.keys);
  }

  applies(ref: ImageReference): boolean {
    return this.keysFor(ref) !== undefined;
  }

  /**
   * Verifies an image against images.verify: undefined when no rule covers it, what was verified
   * when a trusted signature covers it, else unsigned_image (with the reason), before anything
   * but manifests and signature payloads was read from the registry.
   */
  async verify(ref: ImageReference): Promise<VerifiedImage | undefined> {
    const keys = this.keysFor(ref);
    if (!keys) return undefined;
    const found = await this.o.signatures.find(ref);
    const verdict = found.missing
      ? {
          ok: false as const,
          reason: 'no_signature' as const,
          detail: `there is no ${signatureTag(found.digest)} in ${ref.familiarRepository}`,
        }
      : verifySignatures(found.layers, { digest: found.digest, repository: ref }, keys);
    if (!verdict.ok) {
      const message =
        `${ref.familiar} (${found.digest}) is not signed by a key this robot trusts (${verdict.reason}: ${verdict.detail}); ` +
        'nothing was pulled or run, and the running container was left as it was';
      this.o.logger.warn('refused an image that does not verify', {
        image: ref.familiar,
        digest: found.digest,
        reason: verdict.reason,
      });
      throw new AgentError('unsigned_image', message, { details: { reason: verdict.reason, digest: found.digest } });
    }
    return {
      image: ref.familiar,
      digest: found.digest,
      runReference: `${ref.familiarRepository}@${found.digest}`,
      key: { id: verdict.key.id, file: verdict.key.file },
      at: (this.o.now?.() ?? new Date()).toISOString(),
    };
  }

  /** Remembers a verified image once pulled (by its reference; its id says which local image it is). */
  remember(verified: VerifiedImage): void {
    this.records.delete(verified.image);
    this.records.set(verified.image, verified);
    while (this.records.size > MAX_RECORDS) this.records.delete(this.records.keys().next().value!);
    try {
      writeJsonFile(this.file, { images: Object.fromEntries(this.records) });
    } catch (err) {
      // Only the record is lost: the next create of this image verifies it again.
      this.o.logger.warn('could not save the record of a verified image', {
        image: verified.image,
        error: toErrorInfo(err),
      });
    }
  }

  /** The last verification of a reference, if any. */
  lookup(image: string): VerifiedImage | undefined {
    return this.records.get(image);
  }

  /** The verification of an engine image id, for state.images. */
  byImageId(imageId: string): VerifiedImage | undefined {
    for (const record of this.records.values()) if (record.imageId === imageId) return record;
    return undefined;
  }
}
