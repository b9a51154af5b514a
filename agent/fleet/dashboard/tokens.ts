import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../../core/errors.js';

/** What a token lets its holder do: read the fleet, or also act on it. */
export type Role = 'read' | 'operator';

export interface Tokens {
  read: string;
  operator: string;
  /** The files that hold them, and whether they were made just now (then printed once). */
  files: { read: string; operator: string };
  generated: boolean;
}

export const READ_TOKEN_FILE = 'dashboard-read.token';
export const OPERATOR_TOKEN_FILE = 'dashboard-operator.token';
/** Below this a token is guessable; above it, not a token but a mistake (a whole file). */
const MIN_TOKEN = 16;
const MAX_TOKEN = 512;

/**
 * The read-only and the operator token: each from its file when given, else from the state dir,
 * made there (32 random bytes, base64url, mode 0600) the first time. The two must differ: the
 * same token for both would make every viewer an operator.
 */
export function loadTokens(o: { readFile?: string; operatorFile?: string; stateDir: string }): Tokens {
  let generated = false;
  const one = (given: string | undefined, name: string): { token: string; file: string } => {
    if (given) return { token: readToken(given), file: given };
    const file = join(o.stateDir, name);
    try {
      return { token: readToken(file), file };
    } catch (err) {
      if ((err as AgentError).details?.errno !== 'ENOENT') throw err;
    }
    try {
      mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
      const token = randomBytes(32).toString('base64url');
      // wx: two servers starting at once must not each write a different token.
      writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
      generated = true;
      return { token, file };
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new AgentError(
        'token_file',
        `cannot store a dashboard token in ${file} (${why}): ` +
          'pass --state-dir to a directory you may write, or --token-file/--operator-token-file',
      );
    }
  };
  const read = one(o.readFile, READ_TOKEN_FILE);
  const operator = one(o.operatorFile, OPERATOR_TOKEN_FILE);
  if (read.token === operator.token) {
    throw new AgentError(
      'token_file',
      'the read-only and the operator token are the same: every viewer could act on ' +
        'the fleet; give each its own file',
    );
  }
  return { read: read.token, operator: operator.token, files: { read: read.file, operator: operator.file }, generated };
}

function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new AgentError('token_file', `cannot read the dashboard token file ${file} (${errno})`, {
      details: { errno },
    });
  }
  if (text.length < MIN_TOKEN || text.length > MAX_TOKEN || /\s/.test(text)) {
    throw new AgentError(
      'token_file',
      `the dashboard token in ${file} must be one word of ${MIN_TOKEN} to ${MAX_TOKEN} ` +
        'characters (e.g. openssl rand -base64 32)',
    );
  }
  return text;
}

/**
 * The role a presented token grants, or null. Compared in constant time over fixed-length
 * digests, so neither the content nor the length of a token leaks through timing.
 */
export function roleOf(presented: string | undefined | null, tokens: Pick<Tokens, 'read' | 'operator'>): Role | null {
  if (!presented || presented.length > MAX_TOKEN) return null;
  const given = digest(presented);
  const isOperator = timingSafeEqual(given, digest(tokens.operator));
  const isRead = timingSafeEqual(given, digest(tokens.read));
  return isOperator ? 'operator' : isRead ? 'read' : null;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
