import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyIdOf } from './request-signer.js';

/**
 * `robot-fleet keygen --out DIR`: a new Ed25519 pair for signing commands. The private key is
 * created 0600 and never overwritten (O_EXCL); the public key goes to every robot's
 * security.commands.keys under the printed id.
 */
export async function keygen(dir: string, out: (s: string) => void | Promise<void>): Promise<number> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const kid = await keyIdOf(publicKey);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyFile = join(dir, `${kid}.key`);
  const pubFile = join(dir, `${kid}.pub`);
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  writeFileSync(pubFile, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644, flag: 'wx' });
  await out(
    [
      `kid: ${kid}`,
      `private key: ${keyFile} (0600: keep it with the operator; robot-fleet --sign-key ${keyFile})`,
      `public key: ${pubFile} (copy it to each robot and add to its config:)`,
      'security:',
      '  commands:',
      '    keys:',
      `      - id: ${kid}`,
      `        publicKeyFile: /etc/robot-agent/keys/${kid}.pub`,
    ].join('\n'),
  );
  return 0;
}
