import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AgentConfig } from './types.js';

/** A public key file is a few hundred bytes; anything this big is the wrong file. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

/**
 * Reads security.commands.keys: each an Ed25519 public key (PEM, SPKI) under a unique id. A key
 * that cannot be used is a config problem now, not an `unknown_key` at the first command.
 */
export function readCommandKeys(config: Pick<AgentConfig, 'security'>, problems: string[]): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  const { commands } = config.security;
  commands.keys.forEach((entry, i) => {
    const at = `security.commands.keys[${i}]`;
    if (keys.has(entry.id)) {
      problems.push(`${at}.id: "${entry.id}" is given twice; each key needs its own id`);
      return;
    }
    let pem: Buffer;
    try {
      pem = readFileSync(entry.publicKeyFile);
    } catch (err) {
      problems.push(
        `${at}.publicKeyFile: cannot read ${entry.publicKeyFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
      return;
    }
    let key: KeyObject;
    try {
      if (pem.length > MAX_KEY_FILE_BYTES) throw new Error('too large');
      key = createPublicKey({ key: pem, format: 'pem' });
    } catch {
      problems.push(
        `${at}.publicKeyFile: ${entry.publicKeyFile} is not a PEM public key (robot-fleet keygen writes one)`,
      );
      return;
    }
    if (key.asymmetricKeyType !== 'ed25519') {
      problems.push(
        `${at}.publicKeyFile: ${entry.publicKeyFile} is a ${key.asymmetricKeyType ?? 'unknown'} key; commands are ` +
          'signed with Ed25519 keys (robot-fleet keygen)',
      );
      return;
    }
    keys.set(entry.id, key);
  });
  if (commands.required === true && commands.keys.length === 0) {
    problems.push(
      'security.commands.required: is true, but security.commands.keys is empty: no command could be accepted',
    );
  }
  return keys;
}
