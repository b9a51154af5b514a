import { join } from 'node:path';
import { readJsonFile, stateFileExists, writeJsonFile } from '../state/json-file.js';
import { quote, unauthorized } from './unauthorized.js';

/**
 * Signed requests not yet expired that one robot can hold. A valid one takes a signing key to
 * make, so only a misbehaving signer fills it: with lifetimes of 2 minutes this is 17 requests a
 * second, sustained. Beyond it requests are refused (`replay_store_full`), never an id forgotten
 * early, which would reopen a replay window. The file stays under about 300 KiB.
 */
export const MAX_REPLAY_IDS = 2048;

export const REPLAY_FILE = 'command-ids.json';

interface ReplayFile {
  /** jti -> exp (seconds since the epoch). */
  ids: Record<string, number>;
}

/**
 * The `jti` of every signed request the robot accepted, kept until it expires (plus the clock
 * skew), in state.dir so that a restart does not reopen a replay window. Claimed before the
 * command runs and written through (atomic replace, confined to state.dir) before it does.
 */
export class ReplayStore {
  readonly name = 'replay-store';
  private ids: Map<string, number> | undefined;
  /**
   * When the file was there but unreadable: signatures issued before the store was lost may have
   * been used, so none issued before this moment (seconds) is accepted.
   */
  private issuedAfter = 0;
  private readonly file: string;

  constructor(private readonly o: { dir: string; clockSkewSeconds: number; now: () => number; max?: number }) {
    this.file = join(o.dir, REPLAY_FILE);
  }

  get size(): number {
    return this.load().size;
  }

  /** Records jti as used until exp, or refuses it (`replayed`, `replay_store_full`). */
  claim(jti: string, claims: { iat: number; exp: number }): void {
    const ids = this.load();
    const now = this.o.now() / 1000;
    if (ids.has(jti)) {
      throw unauthorized(
        'replayed',
        `its signature (jti ${quote(jti)}) was used before; a signature is good for one request ` +
          'only: sign a new one',
      );
    }
    if (claims.iat < this.issuedAfter) {
      throw unauthorized(
        'replayed',
        'it was signed before the robot lost its record of used signatures ' +
          `(${REPLAY_FILE} in state.dir was unreadable at start): sign a new one`,
      );
    }
    this.prune(now);
    const max = this.o.max ?? MAX_REPLAY_IDS;
    if (ids.size >= max) {
      const next = Math.max(0, Math.ceil(Math.min(...ids.values()) + this.o.clockSkewSeconds - now));
      throw unauthorized(
        'replay_store_full',
        `the robot already holds ${ids.size} signed requests that have not expired; ` + `try again in ${next} s`,
      );
    }
    ids.set(jti, claims.exp);
    try {
      writeJsonFile(this.file, { ids: Object.fromEntries(ids) } satisfies ReplayFile);
    } catch (err) {
      ids.delete(jti);
      const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw unauthorized(
        'replay_store_unwritable',
        `the robot cannot record the signature as used (${REPLAY_FILE} in ` +
          `state.dir: ${why}); refused, so that it cannot be replayed later`,
      );
    }
  }

  private prune(now: number): void {
    for (const [jti, exp] of this.ids ?? []) {
      if (exp + this.o.clockSkewSeconds < now) this.ids!.delete(jti);
    }
  }

  private load(): Map<string, number> {
    if (this.ids) return this.ids;
    this.ids = new Map();
    const doc = readJsonFile<ReplayFile>(this.file);
    const ids = doc?.ids;
    if (ids && typeof ids === 'object') {
      for (const [jti, exp] of Object.entries(ids)) if (typeof exp === 'number') this.ids.set(jti, exp);
      this.prune(this.o.now() / 1000);
    } else if (stateFileExists(this.file)) {
      this.issuedAfter = this.o.now() / 1000 + this.o.clockSkewSeconds;
    }
    return this.ids;
  }

  /** Reads the file now (at start), not at the first request. */
  async start(): Promise<void> {
    this.load();
  }

  async stop(): Promise<void> {}
}
