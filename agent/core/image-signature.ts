import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { parseImageReference, type ImageReference } from './image-reference.js';

/**
 * Cosign's signature format (sigstore/cosign specs/SIGNATURE_SPEC.md), pure: the "simple
 * signing" payload that names an image's manifest digest and repository, and the ECDSA P-256
 * signature over its bytes (SHA-256, ASN.1 DER, base64) that cosign keeps in a layer annotation.
 * Kept byte-compatible with `cosign sign --key` / `cosign verify --key`, so a fleet may sign
 * with either tool.
 */
export const SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature';
/**
 * An optional claim robot-fleet adds: which key signed (a hint only, it proves nothing). It
 * lets a refusal tell "a trusted key's signature that does not verify" (bad_signature) from a
 * signature by a key the robot does not know (unknown_key); ECDSA itself cannot tell them apart.
 */
export const KEY_HINT = 'dev.robot-fleet/key-id';

export type SignatureRefusal =
  'no_signature' | 'unknown_key' | 'bad_signature' | 'digest_mismatch' | 'wrong_repository';

export interface TrustedKey {
  /** sha256 of the key's SubjectPublicKeyInfo (DER), hex: what KEY_HINT carries. */
  id: string;
  /** Where it was read from, for messages and state. */
  file: string;
  key: KeyObject;
}

/** One signature as found in a signature manifest: the payload bytes and the annotation. */
export interface SignatureLayer {
  payload: Buffer;
  signature: string;
}

export type SignatureVerdict = { ok: true; key: TrustedKey } | { ok: false; reason: SignatureRefusal; detail: string };

/** The tag cosign keeps an image's signatures under: sha256:abc... -> sha256-abc....sig */
export function signatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

/**
 * The repository as cosign writes it in critical.identity.docker-reference: go-containerregistry's
 * Repository.Name(), whose Docker Hub registry is index.docker.io.
 */
export function cosignIdentity(ref: ImageReference): string {
  return `${ref.registry === 'docker.io' ? 'index.docker.io' : ref.registry}/${ref.repository}`;
}

/**
 * The payload bytes, as Go's json.Marshal writes cosign's SimpleContainerImage: fields in struct
 * order, no spaces, `optional` null when there are no annotations (maps have their keys sorted).
 */
export function simpleSigningPayload(o: {
  identity: string;
  digest: string;
  optional?: Record<string, string>;
}): Buffer {
  const optional =
    o.optional && Object.keys(o.optional).length > 0
      ? Object.fromEntries(Object.entries(o.optional).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : null;
  const doc = {
    critical: {
      identity: { 'docker-reference': o.identity },
      image: { 'docker-manifest-digest': o.digest },
      type: COSIGN_SIGNATURE_TYPE,
    },
    optional,
  };
  // Go escapes <, > and & in strings; JSON.stringify does not. None occurs in a reference or a
  // digest, but an annotation could hold one.
  return Buffer.from(
    JSON.stringify(doc).replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`),
    'utf8',
  );
}

export function keyId(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** Whether a key is what cosign signs with: ECDSA on P-256. */
export function isP256(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

/** ECDSA P-256 over SHA-256 of the payload, DER, base64: the annotation's value. */
export function signPayload(payload: Buffer, privateKey: KeyObject): string {
  return sign('sha256', payload, { key: privateKey, dsaEncoding: 'der' }).toString('base64');
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Whether one of the layers is a signature by a trusted key over a payload that names this very
 * digest and repository. Only what a verified signature covers is believed: the payload is read
 * after its signature checked out. When none passes, the most telling refusal is answered: a
 * trusted key's payload for something else (digest_mismatch, wrong_repository) before a broken
 * signature (bad_signature) before a stranger's (unknown_key).
 */
export function verifySignatures(
  layers: readonly SignatureLayer[],
  expected: { digest: string; repository: ImageReference },
  keys: readonly TrustedKey[],
): SignatureVerdict {
  if (layers.length === 0)
    return { ok: false, reason: 'no_signature', detail: 'the signature manifest holds no cosign signature' };
  let best: Extract<SignatureVerdict, { ok: false }> | undefined;
  for (const layer of layers) {
    const verdict = verifyOne(layer, expected, keys);
    if (verdict.ok) return verdict;
    if (!best || RANK[verdict.reason] > RANK[best.reason]) best = verdict;
  }
  return best!;
}

const RANK: Record<SignatureRefusal, number> = {
  no_signature: 0,
  unknown_key: 1,
  bad_signature: 2,
  digest_mismatch: 3,
  wrong_repository: 3,
};

function verifyOne(
  layer: SignatureLayer,
  expected: { digest: string; repository: ImageReference },
  keys: readonly TrustedKey[],
): SignatureVerdict {
  const der = BASE64.test(layer.signature) ? Buffer.from(layer.signature, 'base64') : undefined;
  // A DER ECDSA signature starts with SEQUENCE (0x30); anything else is no signature at all.
  if (!der || der.length < 8 || der[0] !== 0x30)
    return {
      ok: false,
      reason: 'bad_signature',
      detail: 'the signature annotation is not a base64 DER ECDSA signature',
    };
  const key = keys.find((k) => {
    try {
      return verify('sha256', layer.payload, { key: k.key, dsaEncoding: 'der' }, der);
    } catch {
      return false;
    }
  });
  if (!key) {
    const hint = hintOf(layer.payload);
    const known = keys.find((k) => k.id === hint);
    if (known)
      return {
        ok: false,
        reason: 'bad_signature',
        detail: `the signature does not verify with ${known.file}, the key it names (tampered payload or signature)`,
      };
    return {
      ok: false,
      reason: 'unknown_key',
      detail: `the signature is by none of the trusted keys (${keys.map((k) => k.file).join(', ')})`,
    };
  }
  let doc: { critical?: { type?: unknown; image?: Record<string, unknown>; identity?: Record<string, unknown> } };
  try {
    doc = JSON.parse(layer.payload.toString('utf8')) as typeof doc;
  } catch {
    return { ok: false, reason: 'bad_signature', detail: `the payload signed by ${key.file} is not JSON` };
  }
  const critical = doc?.critical;
  if (critical?.type !== COSIGN_SIGNATURE_TYPE)
    return {
      ok: false,
      reason: 'bad_signature',
      detail: `the payload signed by ${key.file} is not a cosign container image signature`,
    };
  const digest = critical.image?.['docker-manifest-digest'];
  if (digest !== expected.digest) {
    return {
      ok: false,
      reason: 'digest_mismatch',
      detail: `the signature by ${key.file} is for ${String(digest)}, not ${expected.digest}`,
    };
  }
  const named = critical.identity?.['docker-reference'];
  if (!sameRepository(named, expected.repository)) {
    return {
      ok: false,
      reason: 'wrong_repository',
      detail: `the signature by ${key.file} names ${String(named)}, not ${cosignIdentity(expected.repository)}`,
    };
  }
  return { ok: true, key };
}

/** docker-reference against the repository, both normalised (index.docker.io is docker.io; a tag on it is ignored). */
function sameRepository(named: unknown, repository: ImageReference): boolean {
  if (typeof named !== 'string') return false;
  try {
    const ref = parseImageReference(named);
    return ref.registry === repository.registry && ref.repository === repository.repository;
  } catch {
    return false;
  }
}

function hintOf(payload: Buffer): string | undefined {
  try {
    const hint = (JSON.parse(payload.toString('utf8')) as { optional?: Record<string, unknown> | null }).optional?.[
      KEY_HINT
    ];
    return typeof hint === 'string' ? hint : undefined;
  } catch {
    return undefined;
  }
}
