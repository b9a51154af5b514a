import { createHash } from 'node:crypto';
import { AgentError } from '../core/errors.js';
import type { ImageReference } from '../core/image-reference.js';
import type { Endpoint, RegistryClient, RegistrySession } from './registry-client.js';
import {
  SIGNATURE_ANNOTATION,
  SIMPLE_SIGNING_MEDIA_TYPE,
  signatureTag,
  type SignatureLayer,
} from '../core/image-signature.js';

/**
 * Cosign's signatures in a registry without a referrers API (Debian's docker-registry 2.8): an
 * OCI image manifest at tag sha256-<hex>.sig in the image's own repository, one layer per
 * signature, each the payload blob with the signature in an annotation. Reads are capped: a
 * registry the robot does not trust must not be able to make it read gigabytes to say "no".
 */
export const LIMITS = {
  /** The image's own manifest (or index): a ROS image's is a few KiB. */
  manifestBytes: 4 * 1024 * 1024,
  /** The signature manifest: about 400 bytes a signature. */
  signatureManifestBytes: 256 * 1024,
  /** One payload: cosign's are about 250 bytes, with annotations a few KiB. */
  payloadBytes: 64 * 1024,
  /** Signatures looked at per image (key rotation, several signers); the rest are ignored. */
  signatures: 16,
} as const;

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const ANY_MANIFEST = [
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  OCI_MANIFEST,
].join(', ');

interface SignatureManifest {
  schemaVersion?: number;
  mediaType?: string;
  config?: { mediaType: string; size: number; digest: string };
  layers?: Array<{ mediaType?: string; size?: number; digest?: string; annotations?: Record<string, string> }>;
}

export interface FoundSignatures {
  /** The digest of what the reference names (the tag's manifest or index), computed from its bytes. */
  digest: string;
  /** Where the signatures were read: the mirror or the origin. */
  source: 'mirror' | 'origin';
  /** The .sig tag's manifest was absent. */
  missing: boolean;
  layers: SignatureLayer[];
}

export class SignatureStore {
  constructor(private readonly registry: RegistryClient) {}

  /**
   * The digest a reference names and the signatures stored for it, from the first endpoint that
   * answers (the mirror, a pull-through cache, proxies the .sig tag as any other). Reads manifests
   * and the small payload blobs only: never a layer of the image.
   */
  async find(ref: ImageReference): Promise<FoundSignatures> {
    let mirrorError: unknown;
    let mirrorMissing: FoundSignatures | undefined;
    for (const endpoint of this.registry.endpoints(ref)) {
      try {
        const found = await this.findAt(endpoint, ref);
        // A plain mirror (not a pull-through cache) may hold the image without its signatures:
        // the origin is asked too, and its answer counts only for the digest the mirror serves.
        if (endpoint.source === 'mirror' && found.missing) {
          mirrorMissing = found;
          continue;
        }
        if (mirrorMissing && found.digest !== mirrorMissing.digest) return mirrorMissing;
        return found;
      } catch (err) {
        if (endpoint.source === 'mirror') {
          mirrorError = err;
          continue;
        }
        if (mirrorMissing) return mirrorMissing;
        throw err;
      }
    }
    if (mirrorMissing) return mirrorMissing;
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- the mirror's own error, rethrown as caught
    throw mirrorError ?? new AgentError('registry_error', `no registry to ask for ${ref.familiar}`);
  }

  private async findAt(endpoint: Endpoint, ref: ImageReference): Promise<FoundSignatures> {
    const session = this.registry.session(endpoint, ref.repository);
    const digest = await resolveDigest(session, ref);
    let manifest: SignatureManifest;
    try {
      const { bytes } = await session.getBytes(
        `/manifests/${signatureTag(digest)}`,
        OCI_MANIFEST,
        LIMITS.signatureManifestBytes,
      );
      manifest = JSON.parse(bytes.toString('utf8')) as SignatureManifest;
    } catch (err) {
      if (err instanceof AgentError && err.code === 'image_not_found')
        return { digest, source: endpoint.source, missing: true, layers: [] };
      if (err instanceof SyntaxError) return { digest, source: endpoint.source, missing: false, layers: [] };
      throw err;
    }
    const layers: SignatureLayer[] = [];
    const candidates = (Array.isArray(manifest.layers) ? manifest.layers : [])
      .filter(
        (l) =>
          l.mediaType === SIMPLE_SIGNING_MEDIA_TYPE &&
          typeof l.digest === 'string' &&
          typeof l.annotations?.[SIGNATURE_ANNOTATION] === 'string',
      )
      .slice(0, LIMITS.signatures);
    for (const layer of candidates) {
      if (!/^sha256:[a-f0-9]{64}$/.test(layer.digest!) || (layer.size ?? 0) > LIMITS.payloadBytes) continue;
      const { bytes } = await session.getBytes(`/blobs/${layer.digest}`, '*/*', LIMITS.payloadBytes);
      // Content addressing: the bytes are the ones the manifest names, whatever the registry says.
      if (sha256(bytes) !== layer.digest) continue;
      layers.push({ payload: bytes, signature: layer.annotations![SIGNATURE_ANNOTATION]! });
    }
    return { digest, source: endpoint.source, missing: false, layers };
  }

  /**
   * Adds a signature to the image's signature manifest (creating it), as `cosign sign` does:
   * the payload blob, the config blob, then the manifest at the .sig tag. The same payload and
   * signature twice is one layer.
   */
  async write(
    ref: ImageReference,
    endpoint: Endpoint,
    digest: string,
    signature: SignatureLayer,
    /**
     * Whether a stored signature over the same payload is already this signer's (ECDSA signatures differ
     * each time).
     */
    isOurs: (storedSignature: string) => boolean = () => false,
  ): Promise<{ tag: string; layers: number; added: boolean }> {
    const session = this.registry.session(endpoint, ref.repository);
    const tag = signatureTag(digest);
    let existing: SignatureManifest['layers'] = [];
    try {
      const { bytes } = await session.getBytes(`/manifests/${tag}`, OCI_MANIFEST, LIMITS.signatureManifestBytes);
      existing = (JSON.parse(bytes.toString('utf8')) as SignatureManifest).layers ?? [];
    } catch (err) {
      if (!(err instanceof AgentError && err.code === 'image_not_found')) throw err;
    }
    const payloadDigest = sha256(signature.payload);
    const layer = {
      mediaType: SIMPLE_SIGNING_MEDIA_TYPE,
      size: signature.payload.length,
      digest: payloadDigest,
      annotations: { [SIGNATURE_ANNOTATION]: signature.signature },
    };
    const signatureOf = (l: NonNullable<SignatureManifest['layers']>[number]) =>
      l.annotations?.[SIGNATURE_ANNOTATION] ?? '';
    const same = existing.some(
      (l) => l.digest === payloadDigest && (signatureOf(l) === signature.signature || isOurs(signatureOf(l))),
    );
    if (same) return { tag, layers: existing.length, added: false };
    const layers = [...existing, layer];
    await uploadBlob(session, signature.payload);
    const config = signatureConfig(layers.map((l) => l.digest!));
    await uploadBlob(session, config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, size: config.length, digest: sha256(config) },
        layers,
      }),
    );
    await session.send('PUT', `/manifests/${tag}`, { bytes: manifest, contentType: OCI_MANIFEST });
    return { tag, layers: layers.length, added: true };
  }
}

/**
 * What a reference names, by digest: of the manifest (or index) bytes as served, which is what
 * the engine will check a pull by digest against; a digest in the reference is checked too.
 */
export async function resolveDigest(session: RegistrySession, ref: ImageReference): Promise<string> {
  const { bytes } = await session.getBytes(
    `/manifests/${ref.digest ?? ref.tag ?? 'latest'}`,
    ANY_MANIFEST,
    LIMITS.manifestBytes,
  );
  const digest = sha256(bytes);
  if (ref.digest && digest !== ref.digest) {
    throw new AgentError(
      'registry_error',
      `the registry answered ${ref.familiar} with a manifest whose digest is ${digest}`,
    );
  }
  return digest;
}

async function uploadBlob(session: RegistrySession, bytes: Buffer): Promise<void> {
  const digest = sha256(bytes);
  const head = await session.send('HEAD', `/blobs/${digest}`);
  if (head.ok) return;
  const started = await session.send('POST', '/blobs/uploads/');
  await started.body?.cancel().catch(() => undefined);
  const location = started.headers.get('location');
  if (!location)
    throw new AgentError('registry_error', 'the registry started an upload without saying where to send it');
  const url = new URL(location, session.baseUrl);
  url.searchParams.set('digest', digest);
  const put = await session.send('PUT', url.toString(), { bytes, contentType: 'application/octet-stream' });
  await put.body?.cancel().catch(() => undefined);
}

/**
 * The config blob of a signature image, as go-containerregistry writes it for cosign (fields in
 * Go's struct order, zero times): the same bytes cosign would write for these payloads.
 */
export function signatureConfig(payloadDigests: string[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: '',
      created: '0001-01-01T00:00:00Z',
      history: payloadDigests.map(() => ({ created: '0001-01-01T00:00:00Z' })),
      os: '',
      rootfs: { type: 'layers', diff_ids: payloadDigests },
      config: {},
    }),
  );
}

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
