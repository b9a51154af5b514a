import type { KeyObject } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { quote, unauthorized } from './unauthorized.js';

/** A compact EdDSA JWS with these claims is a few hundred characters; more is not one of ours. */
export const MAX_TOKEN_CHARS = 2048;
/** Longest `jti` and `kid` accepted (they are kept, and quoted in refusals). */
export const MAX_ID_CHARS = 128;

/** The claims of a verified signature (seconds since the epoch for iat and exp). */
export interface SignedClaims {
  kid: string;
  aud: string;
  cmd: string;
  args: string;
  iat: number;
  exp: number;
  jti: string;
}

export interface CommandVerifierOptions {
  robotId: string;
  /** Public keys by key id (security.commands.keys). */
  keys: ReadonlyMap<string, KeyObject>;
  clockSkewSeconds: number;
  /** The robot's clock in ms since the epoch; tests inject one. */
  now: () => number;
}

/**
 * Checks a command's or a desired state's signature: an EdDSA compact JWS by one of the robot's
 * keys whose claims name this robot, this command and the hash of this message. Every refusal is
 * an `unauthorized` AgentError with a reason; nothing is decided from a claim before the
 * signature over it has verified. Whether a jti was used before is the replay store's business.
 */
export class CommandVerifier {
  constructor(private readonly o: CommandVerifierOptions) {}

  get keyIds(): string[] {
    return [...this.o.keys.keys()];
  }

  /** Signature, key, robot, command, arguments and the shape of the claims; not the time. */
  async verify(
    token: unknown,
    expected: { command: string; hash: string; maxLifetimeSeconds: number },
  ): Promise<SignedClaims> {
    if (token === undefined || token === null) {
      throw unauthorized(
        'unsigned',
        'it is not signed; this robot accepts only messages signed with one of the keys in ' +
          'its security.commands.keys (robot-fleet --sign-key)',
      );
    }
    if (typeof token !== 'string' || token.length === 0) {
      throw unauthorized('bad_token', 'its "signature" must be a compact JWS (a string)');
    }
    if (token.length > MAX_TOKEN_CHARS) {
      throw unauthorized(
        'token_too_large',
        `its signature is ${token.length} characters; at most ${MAX_TOKEN_CHARS} are read`,
      );
    }
    let header: { alg?: unknown; kid?: unknown };
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw unauthorized('bad_token', 'its "signature" is not a compact JWS');
    }
    if (header.alg !== 'EdDSA') {
      throw unauthorized(
        'bad_token',
        `its signature uses algorithm ${quote(header.alg)}; only EdDSA (Ed25519) is accepted`,
      );
    }
    const kid = header.kid;
    if (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_ID_CHARS) {
      throw unauthorized('bad_token', 'its signature names no key id ("kid" in the header)');
    }
    const key = this.o.keys.get(kid);
    if (!key) {
      const known = this.keyIds.map((k) => quote(k, 32)).join(', ');
      throw unauthorized(
        'unknown_key',
        `it is signed with key ${quote(kid)}, which is not among this robot's keys (${known})`,
      );
    }
    let payload: Uint8Array;
    try {
      ({ payload } = await compactVerify(token, key, { algorithms: ['EdDSA'] }));
    } catch {
      throw unauthorized(
        'bad_signature',
        `its signature does not verify with key ${quote(kid)}: the message was altered ` +
          'after signing, or signed with another key under that id',
      );
    }
    const claims = readClaims(payload);
    if (claims.aud !== this.o.robotId) {
      throw unauthorized(
        'wrong_robot',
        `it is signed for robot ${quote(claims.aud)}, not for this robot (${quote(this.o.robotId)})`,
      );
    }
    if (claims.cmd !== expected.command) {
      throw unauthorized('wrong_command', `it is signed for ${quote(claims.cmd)}, not for ${quote(expected.command)}`);
    }
    if (claims.args !== expected.hash) {
      throw unauthorized('wrong_arguments', 'its content differs from what was signed (the hash in the "args" claim)');
    }
    if (claims.exp - claims.iat > expected.maxLifetimeSeconds) {
      throw unauthorized(
        'lifetime_too_long',
        `its signature is valid for ${claims.exp - claims.iat} s; this robot accepts ` +
          `at most ${expected.maxLifetimeSeconds} s (security.commands)`,
      );
    }
    return { ...claims, kid };
  }

  /** The latest issue time a message signed before now can carry (the robot's clock plus the skew), in seconds. */
  latestIssuedAt(): number {
    return this.o.now() / 1000 + this.o.clockSkewSeconds;
  }

  /** Issued no later than now plus the skew, and not expired more than the skew ago. */
  checkTime(claims: Pick<SignedClaims, 'iat' | 'exp'>): void {
    const now = this.o.now() / 1000;
    const skew = this.o.clockSkewSeconds;
    const clock = `the robot's clock says ${iso(now)}; tolerance ${skew} s`;
    if (claims.iat > now + skew) {
      throw unauthorized(
        'not_yet_valid',
        `it was signed at ${iso(claims.iat)}, in the future (${clock}): check the clocks`,
      );
    }
    if (claims.exp < now - skew) {
      throw unauthorized('expired', `its signature expired at ${iso(claims.exp)} (${clock}): sign it again`);
    }
  }
}

function readClaims(payload: Uint8Array): Omit<SignedClaims, 'kid'> {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
  } catch {
    throw unauthorized('bad_token', 'the claims of its signature are not JSON');
  }
  const str = (name: string): string => {
    const v = doc?.[name];
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID_CHARS) {
      throw unauthorized(
        'bad_token',
        `its signature lacks the "${name}" claim (a string of 1 to ${MAX_ID_CHARS} characters)`,
      );
    }
    return v;
  };
  const seconds = (name: string): number => {
    const v = doc?.[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw unauthorized('bad_token', `its signature lacks the "${name}" claim (seconds since 1970)`);
    }
    return v;
  };
  const claims = {
    aud: str('aud'),
    cmd: str('cmd'),
    args: str('args'),
    jti: str('jti'),
    iat: seconds('iat'),
    exp: seconds('exp'),
  };
  if (claims.exp <= claims.iat)
    throw unauthorized('bad_token', 'its signature expires before it was issued ("exp" <= "iat")');
  return claims;
}

function iso(seconds: number): string {
  return new Date(Math.round(seconds * 1000)).toISOString().replace('.000Z', 'Z');
}
