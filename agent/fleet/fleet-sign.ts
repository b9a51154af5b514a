import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { AgentError } from '../core/errors.js';
import { parseImageReference } from '../core/image-reference.js';
import { keyId } from '../core/image-signature.js';
import { readSigningKey } from '../config/image-keys.js';
import { signImageDigest, type SignResult } from '../images/image-signer.js';
import { RegistryClient, type Endpoint } from '../images/registry-client.js';
import { splitOptions } from './cli-options.js';

type Out = (line: string) => unknown;

export const SIGN_USAGE = `robot-fleet sign: signs an image for robots whose images.verify trusts the key (cosign's layout).

  robot-fleet sign <image> --key FILE [--mirror URL] [--username U] [--password-file F] [--insecure] [--json]
        resolves the image's tag to its manifest digest and adds a signature by FILE (an ECDSA
        P-256 private key, PEM) at <repository>:sha256-<hex>.sig, as \`cosign sign --key\` would;
        \`cosign verify --key FILE.pub --insecure-ignore-tlog\` accepts it
  robot-fleet sign --keygen FILE      writes a new key pair: FILE (private, mode 0600) and FILE.pub
        (the same as: openssl ecparam -genkey -name prime256v1 -noout -out FILE;
                      openssl ec -in FILE -pubout -out FILE.pub)

registry credentials: --username (or ROBOT_FLEET_REGISTRY_USERNAME) and --password-file (or
ROBOT_FLEET_REGISTRY_PASSWORD_FILE, or the password itself in ROBOT_FLEET_REGISTRY_PASSWORD);
--insecure speaks plain HTTP to a registry beyond loopback. --mirror URL reads the digest from and
writes the signature to a site mirror (a plain registry holding vetted copies under the image's own
name, e.g. Yahboom's Docker Hub names; robots find it through registries.<host>.mirror).
exit codes: 0 signed, 1 the registry refused or failed, 2 usage`;

class UsageError extends Error {}

/** `robot-fleet sign`: its own options (its --key is the signing key, not the broker's TLS key). */
export async function signCommand(argv: string[], env: NodeJS.ProcessEnv, out: Out, err: Out): Promise<number> {
  try {
    const { flags, args } = splitOptions(argv, SIGN_OPTIONS, (m) => new UsageError(m));
    if (args[0] === 'help' || flags.help === true) {
      out(SIGN_USAGE);
      return 0;
    }
    if (typeof flags.keygen === 'string') return keygen(flags.keygen, out);
    const [image] = args;
    if (!image || typeof flags.key !== 'string')
      throw new UsageError('sign needs <image> and --key FILE (or --keygen FILE)');
    const key = readPrivateKey(flags.key);
    const result = await signImage({
      image,
      key,
      ...registryCredentials(flags, env),
      insecure: flags.insecure === true,
      ...(typeof flags.mirror === 'string' ? { mirror: flags.mirror } : {}),
    });
    out(
      flags.json === true
        ? JSON.stringify(result, null, 2)
        : `signed ${result.image} (${result.digest}) with ${flags.key}: ${result.signature}`,
    );
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      err(`robot-fleet sign: ${e.message}\n\n${SIGN_USAGE}`);
      return 2;
    }
    err(`robot-fleet sign: ${(e as Error).message}`);
    return 1;
  }
}

/** Signs what the reference names now, with robot-fleet's own registry client (credentials from its options). */
export async function signImage(o: {
  image: string;
  key: KeyObject;
  username?: string;
  password?: string;
  insecure?: boolean;
  /** A site mirror to sign in instead of the image's registry (the payload still names the image's repository). */
  mirror?: string;
  timeoutMs?: number;
}): Promise<SignResult> {
  const ref = parseImageReference(o.image);
  const registry = new RegistryClient({
    registries: {
      [ref.registry]: { ...(o.insecure ? { insecure: true } : {}), ...(o.username ? { username: o.username } : {}) },
    },
    passwords: o.username !== undefined && o.password !== undefined ? { [ref.registry]: o.password } : {},
    timeoutMs: o.timeoutMs ?? 30_000,
  });
  let endpoint: Endpoint | undefined;
  if (o.mirror !== undefined) {
    let url: URL;
    try {
      url = new URL(o.mirror);
    } catch {
      throw new UsageError(`--mirror: ${o.mirror} is not a URL (http://host:port or https://host)`);
    }
    const credentials = registry.credentials(ref.registry);
    endpoint = { source: 'mirror', baseUrl: url.origin, pullReference: '', ...(credentials ? { credentials } : {}) };
  }
  return signImageDigest({ registry, ref, key: o.key, ...(endpoint ? { endpoint } : {}) });
}

function keygen(file: string, out: Out): number {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  try {
    // wx: an existing key is never overwritten (it may be the one the fleet trusts).
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    writeFileSync(`${file}.pub`, publicKey.export({ type: 'spki', format: 'pem' }), { flag: 'wx' });
  } catch (e) {
    throw new AgentError(
      'keygen_failed',
      `cannot write the key pair at ${file} and ${file}.pub: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  out(
    `wrote ${file} (private: keep it off the robots) and ${file}.pub (for images.verify on the robots); key id ${keyId(publicKey).slice(0, 16)}`,
  );
  return 0;
}

function readPrivateKey(file: string): KeyObject {
  try {
    return readSigningKey(file);
  } catch (e) {
    throw new UsageError(`--key: ${(e as Error).message}`);
  }
}

function registryCredentials(
  flags: Record<string, string | true>,
  env: NodeJS.ProcessEnv,
): { username?: string; password?: string } {
  const username = typeof flags.username === 'string' ? flags.username : env.ROBOT_FLEET_REGISTRY_USERNAME || undefined;
  const file =
    typeof flags['password-file'] === 'string'
      ? flags['password-file']
      : env.ROBOT_FLEET_REGISTRY_PASSWORD_FILE || undefined;
  let password = env.ROBOT_FLEET_REGISTRY_PASSWORD || undefined;
  if (file) {
    try {
      password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new UsageError(
        `--password-file: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
  }
  if (password !== undefined && username === undefined) throw new UsageError('a registry password needs --username');
  return { ...(username ? { username } : {}), ...(password !== undefined ? { password } : {}) };
}

/** sign's own options: its --key is the signing key, not the broker's TLS key as in fleet-cli's table. */
const SIGN_OPTIONS = {
  valued: new Set(['key', 'keygen', 'username', 'password-file', 'mirror']),
  flags: new Set(['insecure', 'json', 'help']),
};
