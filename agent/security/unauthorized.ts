import { AgentError } from '../core/errors.js';

/** Why a request or a desired state was refused as `unauthorized` (docs/security.md). */
export type UnauthorizedReason =
  | 'unsigned'
  | 'bad_token'
  | 'token_too_large'
  | 'unknown_key'
  | 'bad_signature'
  | 'wrong_robot'
  | 'wrong_command'
  | 'wrong_arguments'
  | 'lifetime_too_long'
  | 'expired'
  | 'not_yet_valid'
  | 'replayed'
  | 'replay_store_full'
  | 'replay_store_unwritable';

export function unauthorized(reason: UnauthorizedReason, message: string): AgentError {
  return new AgentError('unauthorized', message, { details: { reason } });
}

/** The reason of an `unauthorized` AgentError, or undefined for any other error. */
export function reasonOf(err: unknown): UnauthorizedReason | undefined {
  if (!(err instanceof AgentError) || err.code !== 'unauthorized') return undefined;
  return err.details?.reason as UnauthorizedReason | undefined;
}

/** Text the sender chose, quoted back clipped: a refusal stays one short line. */
export function quote(text: unknown, max = 64): string {
  const s = String(text);
  return JSON.stringify(s.length <= max ? s : `${s.slice(0, max)}…`);
}
