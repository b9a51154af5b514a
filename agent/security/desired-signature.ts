import { join } from 'node:path';
import type { Logger } from '../core/logger.js';
import { readJsonFile, stateFileExists, writeJsonFile } from '../state/json-file.js';
import { messageHash, SIGNATURE_FIELD } from './canonical-json.js';
import type { CommandVerifier } from './command-verifier.js';
import { unauthorized } from './unauthorized.js';

export const DESIRED_SIGNATURE_FILE = 'desired-signature.json';

/** The signature of the desired state in force: the one the broker hands again at every reconnect. */
interface InForce {
  jti: string;
  /** Seconds since the epoch. */
  iat: number;
}

/** A desired payload made ready for parseDesired, and how to record its signature once it is taken. */
export interface AdmittedDesired {
  payload: Buffer;
  accept(): void;
}

/**
 * The retained <b>/desired under signed commands. Unlike a request it is a statement of state that
 * the broker hands again at every reconnect, so freshness is by order rather than by one use:
 *  - the message in force (same jti) comes again: admitted, whatever its age (nothing changes);
 *  - one signed no later than the one in force: `replayed` (an old desired state cannot roll a
 *    robot back);
 *  - a newer one: admitted when its signature has not expired (desiredMaxLifetimeSeconds).
 * An empty message (a clear) cannot carry a signature: under `required` it is refused; a fleet
 * publishes a signed {"containers": {}} instead.
 */
export class DesiredSignature {
  private inForce: InForce | undefined;
  private loaded = false;
  private readonly file: string;

  constructor(
    private readonly o: {
      verifier: CommandVerifier | undefined;
      required: boolean;
      maxLifetimeSeconds: number;
      /** desired.json's limit: a bigger payload is left to parseDesired to refuse unparsed. */
      maxBytes: number;
      dir: string;
      logger: Logger;
    },
  ) {
    this.file = join(o.dir, DESIRED_SIGNATURE_FILE);
  }

  async admit(payload: Buffer): Promise<AdmittedDesired> {
    const asIs: AdmittedDesired = { payload, accept: () => undefined };
    if (payload.length > this.o.maxBytes) return asIs;
    if (payload.length === 0) {
      if (!this.o.required) return asIs;
      throw unauthorized(
        'unsigned',
        'an empty desired state (a clear) cannot be signed; publish a signed ' +
          '{"containers": {}} to return every container to this robot\'s config',
      );
    }
    let doc: unknown;
    try {
      doc = JSON.parse(payload.toString('utf8'));
    } catch {
      if (this.o.required) throw unauthorized('unsigned', 'it is not a signed JSON desired state');
      return asIs;
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      if (this.o.required) throw unauthorized('unsigned', 'it is not a signed JSON desired state');
      return asIs;
    }
    const message = doc as Record<string, unknown>;
    const { [SIGNATURE_FIELD]: token, ...body } = message;
    const stripped = Buffer.from(JSON.stringify(body));
    if (token === undefined && !this.o.required) return { payload: stripped, accept: () => undefined };
    if (!this.o.verifier) {
      // As for requests: no keys, nothing to check against; required all the same fails closed.
      if (!this.o.required) return { payload: stripped, accept: () => undefined };
      throw unauthorized('unknown_key', 'this robot has no keys to check signatures with (security.commands.keys)');
    }
    let hash: string;
    try {
      hash = messageHash(message);
    } catch (err) {
      throw unauthorized('wrong_arguments', `it cannot be hashed: ${(err as Error).message}`);
    }
    const expected = { command: 'desired', hash, maxLifetimeSeconds: this.o.maxLifetimeSeconds };
    const claims = await this.o.verifier.verify(token, expected);
    const inForce = this.current();
    if (inForce?.jti !== claims.jti) {
      if (inForce && claims.iat <= inForce.iat) {
        throw unauthorized(
          'replayed',
          `it was signed at ${new Date(claims.iat * 1000).toISOString()}, no later than the ` +
            'desired state in force: an older desired state is not taken again',
        );
      }
      this.o.verifier.checkTime(claims);
    }
    return {
      payload: stripped,
      accept: () => this.record({ jti: claims.jti, iat: claims.iat }),
    };
  }

  private current(): InForce | undefined {
    if (!this.loaded) {
      this.loaded = true;
      const doc = readJsonFile<InForce>(this.file);
      if (doc && typeof doc.jti === 'string' && typeof doc.iat === 'number') {
        this.inForce = { jti: doc.jti, iat: doc.iat };
      } else if (stateFileExists(this.file) && this.o.verifier) {
        // There but unreadable (damaged, or a link planted under its name): which desired state
        // was in force is unknown, so any signed one of the last desiredMaxLifetimeSeconds could
        // roll the robot back. Fail closed, as the replay store does: only one signed from now on.
        this.inForce = { jti: '', iat: this.o.verifier.latestIssuedAt() };
        this.o.logger.warn(
          'the record of the signed desired state in force cannot be read; only a desired state ' +
            'signed from now on is taken',
          { file: this.file },
        );
      }
    }
    return this.inForce;
  }

  private record(next: InForce): void {
    if (this.inForce?.jti === next.jti) return;
    this.inForce = next;
    try {
      writeJsonFile(this.file, next);
    } catch (err) {
      // Kept in memory: until a restart an older desired state is still refused.
      this.o.logger.warn('cannot record the signature of the desired state in force', { error: err as Error });
    }
  }
}
