import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AgentError } from '../core/errors.js';
import { isP256, keyId, type TrustedKey } from '../core/image-signature.js';

// The image keys the config names, read and checked when the config loads (as command-keys.ts does for
// the command keys), so a key that cannot be used is a config problem, not a refusal at the first pull.

/** images.verify in the config: images matching the pattern run only when one of the keys signed them. */
export interface VerifyRule {
  pattern: string;
  keys: string[];
}

/** Reads and checks the public keys of images.verify; every problem is a sentence for check-config. */
export function loadVerifyRules(
  rules: readonly VerifyRule[],
  problems: string[],
): Array<{ pattern: string; keys: TrustedKey[] }> {
  return rules.map((rule, i) => ({
    pattern: rule.pattern,
    keys: rule.keys.flatMap((file, j) => {
      const where = `images.verify[${i}].keys[${j}]`;
      let pem: string;
      try {
        pem = readFileSync(file, 'utf8');
      } catch (err) {
        problems.push(
          `${where}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
        return [];
      }
      try {
        const key = createPublicKey(pem);
        if (!isP256(key)) {
          problems.push(
            `${where}: ${file} is not an ECDSA P-256 public key (cosign's; make one with robot-fleet sign --keygen)`,
          );
          return [];
        }
        return [{ id: keyId(key), file, key }];
      } catch {
        problems.push(`${where}: ${file} is not a PEM public key`);
        return [];
      }
    }),
  }));
}

/** An unencrypted PEM ECDSA P-256 private key (cosign's curve), or bad_key saying what is wrong with it. */
export function readSigningKey(file: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new AgentError(
      'bad_key',
      `cannot read the signing key ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  if (pem.includes('ENCRYPTED SIGSTORE PRIVATE KEY') || pem.includes('ENCRYPTED COSIGN PRIVATE KEY')) {
    throw new AgentError(
      'bad_key',
      `${file} is cosign's encrypted key format; sign with cosign itself, or use a PEM key (robot-fleet sign --keygen)`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new AgentError(
      'bad_key',
      `${file} is not an unencrypted PEM private key (robot-fleet sign --keygen makes one)`,
    );
  }
  if (!isP256(createPublicKey(key)))
    throw new AgentError('bad_key', `${file} is not an ECDSA P-256 key (cosign signs with P-256)`);
  return key;
}
