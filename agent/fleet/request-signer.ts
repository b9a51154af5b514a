import { createPrivateKey, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, exportJWK, SignJWT } from 'jose';
import { messageHash, SIGNATURE_FIELD } from '../security/canonical-json.js';

/** A request signature's default validity: the robot accepts up to security.commands.maxLifetimeSeconds (120). */
export const DEFAULT_REQUEST_LIFETIME_SECONDS = 60;
/** A desired state's: it is retained for robots that are offline (desiredMaxLifetimeSeconds, 7 days). */
export const DEFAULT_DESIRED_LIFETIME_SECONDS = 7 * 24 * 3600;

/** An operator's private key and the id robots know its public half by. */
export interface SigningKey {
  key: KeyObject;
  kid: string;
}

/** The key id robot-fleet gives a key: its RFC 7638 JWK thumbprint (base64url SHA-256). */
export async function keyIdOf(key: KeyObject): Promise<string> {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return calculateJwkThumbprint(await exportJWK(publicKey));
}

/** Reads an Ed25519 private key (PEM, PKCS#8, as keygen writes it); kid defaults to its thumbprint. */
export async function loadSigningKey(file: string, kid?: string): Promise<SigningKey> {
  const key = createPrivateKey({ key: readFileSync(file), format: 'pem' });
  if (key.asymmetricKeyType !== 'ed25519') {
    const type = key.asymmetricKeyType ?? 'unknown';
    throw new Error(`${file} is a ${type} key; commands are signed with Ed25519 (robot-fleet keygen)`);
  }
  return { key, kid: kid ?? (await keyIdOf(key)) };
}

export interface SignOptions {
  key: SigningKey;
  /** The robot id (the `aud` claim). */
  robot: string;
  /** The command name, or "desired" for a retained desired state. */
  command: string;
  /** The whole message as published (a request with its id, or a desired state); a signature in it is ignored. */
  message: Record<string, unknown>;
  lifetimeSeconds?: number;
  /** Seconds since the epoch; now when not given. */
  issuedAt?: number;
  jti?: string;
}

/**
 * The compact JWS (EdDSA) a robot wants beside a request or a desired state: aud = robot,
 * cmd = command, args = SHA-256 of the canonical message without its signature, iat, exp, jti,
 * and the key id in the header (docs/security.md#signed-commands). Used by robot-fleet and meant
 * for the dashboard.
 */
export async function signRequest(o: SignOptions): Promise<string> {
  const iat = o.issuedAt ?? Math.floor(Date.now() / 1000);
  const lifetime =
    o.lifetimeSeconds ??
    (o.command === 'desired' ? DEFAULT_DESIRED_LIFETIME_SECONDS : DEFAULT_REQUEST_LIFETIME_SECONDS);
  return new SignJWT({ cmd: o.command, args: messageHash(o.message) })
    .setProtectedHeader({ alg: 'EdDSA', kid: o.key.kid })
    .setAudience(o.robot)
    .setIssuedAt(iat)
    .setExpirationTime(iat + lifetime)
    .setJti(o.jti ?? randomUUID())
    .sign(o.key.key);
}

/** The message with its `signature` field set, ready to publish. */
export async function signMessage(o: SignOptions): Promise<Record<string, unknown>> {
  const { [SIGNATURE_FIELD]: _old, ...message } = o.message;
  return { ...message, [SIGNATURE_FIELD]: await signRequest({ ...o, message }) };
}
