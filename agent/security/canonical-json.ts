import { createHash } from 'node:crypto';
import { AgentError } from '../core/errors.js';

/** Deeper than this is no request or desired state the agent has a schema for. */
export const MAX_CANONICAL_DEPTH = 64;

/**
 * The JSON text a signature's `args` hash covers: object keys sorted (by UTF-16 code units) at
 * every level, no whitespace, strings and numbers as JSON.stringify writes them. For the values a
 * request can hold this is RFC 8785 (JCS), so a signer in another language can produce it; both
 * ends of this project are JavaScript and agree on it by construction.
 */
export function canonicalJson(value: unknown, depth = 0): string {
  if (depth > MAX_CANONICAL_DEPTH) {
    throw new AgentError('too_deep', `the message is nested deeper than ${MAX_CANONICAL_DEPTH} levels`);
  }
  // 1e400 parses to Infinity, which JSON.stringify writes as null: without this a signed `null`
  // could be swapped for 1e400 (or -1e400) under the same hash, and the command would see Infinity.
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new AgentError('not_canonical', 'a number in the message is out of range (no JSON number stands for it)');
  }
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v, depth + 1)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v, depth + 1)}`).join(',')}}`;
}

/** Where the compact JWS rides in a request or a desired state: a field beside the others. */
export const SIGNATURE_FIELD = 'signature';

/**
 * The `args` claim: base64url SHA-256 of the canonical JSON of the whole message without its
 * `signature` field. For a request that includes its `id`, so a signature cannot be moved to a
 * request with another id either.
 */
export function messageHash(message: Record<string, unknown>): string {
  const { [SIGNATURE_FIELD]: _signature, ...rest } = message;
  return createHash('sha256').update(canonicalJson(rest)).digest('base64url');
}
