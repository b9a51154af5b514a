import type { KeyObject } from 'node:crypto';
import type { AgentConfig } from '../config/types.js';
import { AgentError } from '../core/errors.js';
import { messageHash, SIGNATURE_FIELD } from './canonical-json.js';
import { CommandVerifier } from './command-verifier.js';
import type { ReplayStore } from './replay-store.js';
import { unauthorized } from './unauthorized.js';

/** What the state says about signed commands (state.agent.commandSigning). */
export interface CommandSigningInfo {
  required: boolean;
  keys: string[];
  /** Set when the robot takes unsigned commands from a fleet broker. */
  warning?: string;
}

/**
 * The default, decided here and documented in docs/security.md: keys given means signatures are
 * required unless `required: false` says otherwise (a fleet rolling signing out); no keys means
 * unsigned commands are taken, which a robot on its embedded broker may do, and which on a fleet
 * broker is reported as a warning in the state and the log at every start rather than refused:
 * an agent that will not start after an upgrade is a robot nobody can reach to fix.
 */
export function signingPolicy(config: Pick<AgentConfig, 'security' | 'mqtt'>): CommandSigningInfo {
  const { keys, required } = config.security.commands;
  const ids = keys.map((k) => k.id);
  const isRequired = required ?? ids.length > 0;
  const fleetBroker = config.mqtt.url !== undefined;
  if (isRequired || !fleetBroker) return { required: isRequired, keys: ids };
  const warning =
    ids.length === 0
      ? "commands are not signed: anyone who can publish to this robot's topics on the fleet broker can command it; " +
        'set security.commands.keys (docs/security.md#signed-commands)'
      : "unsigned commands are accepted (security.commands.required is false): anyone who can publish to this robot's " +
        'topics on the fleet broker can command it';
  return { required: false, keys: ids, warning };
}

/** A verified message, and how to mark its signature used once it is certain to be acted on. */
export interface Admitted {
  /** Records the jti as used (throws `unauthorized` replayed / replay_store_full). */
  claim(): void;
}

const NOTHING_TO_CLAIM: Admitted = { claim: () => undefined };

/**
 * The command half of the trust chain for requests: whether a request may run, decided from its
 * signature before anything else looks at it (docs/security.md#signed-commands).
 */
export class CommandSigning {
  readonly verifier: CommandVerifier | undefined;

  constructor(
    private readonly o: {
      policy: CommandSigningInfo;
      keys: ReadonlyMap<string, KeyObject>;
      robotId: string;
      clockSkewSeconds: number;
      maxLifetimeSeconds: number;
      replay: ReplayStore;
      now: () => number;
    },
  ) {
    this.verifier =
      o.keys.size > 0
        ? new CommandVerifier({ robotId: o.robotId, keys: o.keys, clockSkewSeconds: o.clockSkewSeconds, now: o.now })
        : undefined;
  }

  get required(): boolean {
    return this.o.policy.required;
  }

  /**
   * Checks the signature of a request (its JSON object, `signature` field included) for command.
   * Not required and absent: admitted. Present: it must verify, whatever `required` says.
   */
  async verifyRequest(command: string, message: Record<string, unknown>): Promise<Admitted> {
    const token = message[SIGNATURE_FIELD];
    if (token === undefined && !this.o.policy.required) return NOTHING_TO_CLAIM;
    // Without keys there is nothing to check a signature against. The config refuses `required`
    // without keys; should it get here all the same, it fails closed.
    if (!this.verifier) {
      if (!this.o.policy.required) return NOTHING_TO_CLAIM;
      throw unauthorized(
        token === undefined ? 'unsigned' : 'unknown_key',
        'this robot requires signatures but has no keys to check them with (security.commands.keys)',
      );
    }
    let hash: string;
    try {
      hash = messageHash(message);
    } catch (err) {
      throw unauthorized('wrong_arguments', `its arguments cannot be hashed: ${(err as AgentError).message}`);
    }
    const claims = await this.verifier.verify(token, { command, hash, maxLifetimeSeconds: this.o.maxLifetimeSeconds });
    this.verifier.checkTime(claims);
    return { claim: () => this.o.replay.claim(claims.jti, claims) };
  }
}
