import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { ImageReference } from '../core/image-reference.js';
import { KEY_HINT, cosignIdentity, keyId, signPayload, simpleSigningPayload } from '../core/image-signature.js';
import type { Endpoint, RegistryClient } from './registry-client.js';
import { SignatureStore, resolveDigest } from './signature-store.js';

export interface SignResult {
  image: string;
  digest: string;
  /** Where the signature is: repository:sha256-<hex>.sig */
  signature: string;
  keyId: string;
  /** Signatures in that manifest now, and whether this one was new (the same key's is kept once). */
  signatures: number;
  added: boolean;
}

/**
 * Signs an image's manifest digest (the one given, else what the reference names now, computed
 * from the bytes the registry serves) and stores the signature beside it in the registry, at its
 * origin unless another endpoint is given (a site mirror that holds vetted copies). The payload names the
 * repository, so the signature cannot be copied to another repository, and the digest, so a tag moved later
 * is not covered; it also names the key (KEY_HINT), which only helps a robot say why it refused.
 */
export async function signImageDigest(o: {
  registry: RegistryClient;
  ref: ImageReference;
  digest?: string;
  key: KeyObject;
  /** Where to read the digest and write the signature, when not the image's own registry (a site mirror). */
  endpoint?: Endpoint;
}): Promise<SignResult> {
  const endpoint = o.endpoint ?? o.registry.endpoints(o.ref).find((e) => e.source === 'origin')!;
  const digest = o.digest ?? (await resolveDigest(o.registry.session(endpoint, o.ref.repository), o.ref));
  const id = keyId(o.key);
  const payload = simpleSigningPayload({ identity: cosignIdentity(o.ref), digest, optional: { [KEY_HINT]: id } });
  const signature = signPayload(payload, o.key);
  const publicKey = createPublicKey(o.key);
  // ECDSA signatures differ each time: the same payload signed by this key before is kept once.
  const isOurs = (stored: string) => {
    try {
      return verify('sha256', payload, { key: publicKey, dsaEncoding: 'der' }, Buffer.from(stored, 'base64'));
    } catch {
      return false;
    }
  };
  const written = await new SignatureStore(o.registry).write(o.ref, endpoint, digest, { payload, signature }, isOurs);
  return {
    image: o.ref.familiar,
    digest,
    signature: `${o.ref.familiarRepository}:${written.tag}`,
    keyId: id,
    signatures: written.layers,
    added: written.added,
  };
}
