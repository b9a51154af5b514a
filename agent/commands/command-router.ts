import { createHash } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import { AgentError, toErrorInfo, type ErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { MqttLink } from '../mqtt/mqtt-link.js';
import { MAX_CORRELATION_BYTES, type CommandResponse, type Topics } from '../mqtt/topics.js';
import { SIGNATURE_FIELD } from '../security/canonical-json.js';
import type { Admitted, CommandSigning } from '../security/command-signing.js';
import { reasonOf } from '../security/unauthorized.js';
import type { EventBus } from '../state/event-bus.js';
import type { CommandArgs, CommandDefinition, CommandLane, CommandName } from './command.js';
import { loadCommandSchemas, type CommandSchemas } from './command-schemas.js';

export const MAX_REQUEST_BYTES = 256 * 1024;
/** Commands running at once in each lane; beyond it a request is answered `busy`, never queued. */
export const DEFAULT_LANE_LIMITS: Readonly<Record<CommandLane, number>> = { quick: 8, long: 4 };
/** Answers kept for redeliveries: at most this many, and at most this many bytes of them. */
export const MAX_REMEMBERED_ANSWERS = 256;
export const MAX_REMEMBERED_BYTES = 1024 * 1024;
/** Redeliveries of a request still running that wait for its answer; beyond, `in_progress`. */
export const MAX_WAITING_REDELIVERIES = 4;
/** At most one log line about unauthorized requests this often; the others are counted in the next. */
export const UNAUTHORIZED_LOG_INTERVAL_MS = 10_000;

export interface CommandRouterOptions {
  link: MqttLink;
  topics: Topics;
  bus: EventBus;
  logger: Logger;
  commands: CommandDefinition[];
  /** In-flight limits per lane (DEFAULT_LANE_LIMITS when not given). */
  lanes?: Partial<Record<CommandLane, number>>;
  /** Signed commands (docs/security.md#signed-commands); without it every request is taken unsigned. */
  signing?: CommandSigning;
}

interface RegisteredCommand {
  definition: CommandDefinition;
  schemas: CommandSchemas;
  lane: CommandLane;
}

interface ReplyTo {
  command: string;
  responseTopic?: string;
  correlationData?: Buffer;
}

/** A request under way: who else asked for the same answer (true redeliveries) meanwhile. */
interface Running {
  digest: string;
  waiting: ReplyTo[];
}

interface Answered {
  digest: string;
  response: CommandResponse;
  bytes: number;
}

/**
 * Turns <b>/request/<command> messages into calls and answers every one of them on
 * <b>/response/<command> (and the MQTT 5 response topic when it is a safe one). Bad input is
 * answered with a code at once; a handler that throws or rejects becomes an error response,
 * never a crash. Requests are known by command and id: a redelivery (same command, id and
 * payload) gets the same answer without a second run; the same command and id with another
 * payload is refused (`duplicate_id`).
 */
export class CommandRouter {
  readonly name = 'commands';
  private readonly commands = new Map<string, RegisteredCommand>();
  private readonly limits: Record<CommandLane, number>;
  private readonly inFlight: Record<CommandLane, number> = { quick: 0, long: 0 };
  /** Bounded by the lane limits: an entry exists only while its command runs. */
  private readonly running = new Map<string, Running>();
  /** Oldest first; bounded by MAX_REMEMBERED_ANSWERS and MAX_REMEMBERED_BYTES. */
  private readonly answered = new Map<string, Answered>();
  private answeredBytes = 0;
  /** When an unauthorized request was last logged, and how many were not logged since. */
  private unauthorizedLog = { at: -Infinity, suppressed: 0 };
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly options: CommandRouterOptions) {
    this.limits = { ...DEFAULT_LANE_LIMITS, ...options.lanes };
    for (const definition of options.commands) {
      if (this.commands.has(definition.name))
        throw new AgentError('command_duplicate', `command "${definition.name}" registered twice`);
      const lane = definition.lane ?? 'quick';
      this.commands.set(definition.name, { definition, schemas: loadCommandSchemas(definition.name), lane });
    }
  }

  get names(): string[] {
    return [...this.commands.keys()].sort();
  }

  /** For tests and the state: what runs now in each lane. */
  get stats(): { inFlight: Record<CommandLane, number>; remembered: number; rememberedBytes: number } {
    return { inFlight: { ...this.inFlight }, remembered: this.answered.size, rememberedBytes: this.answeredBytes };
  }

  async start(): Promise<void> {
    this.unsubscribe = this.options.link.onMessage((topic, payload, packet) => {
      const command = this.options.topics.commandOf(topic);
      if (command === undefined) return;
      this.handle(command, payload, packet).catch((err: unknown) =>
        this.options.logger.error('command boundary failed', { command, error: err as Error }),
      );
    });
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Public for tests that drive the router without a broker. */
  async handle(
    command: string,
    payload: Buffer,
    packet?: Pick<IPublishPacket, 'properties'>,
  ): Promise<CommandResponse | undefined> {
    const replyTo: ReplyTo = { command };
    const parsed = this.parse(payload);
    const badReplyTo = this.replyProblem(packet);
    // A response topic or correlation data we will not use: answered where every request is,
    // and nothing else happens (the request is not run).
    if (badReplyTo) return this.reply(replyTo, { id: parsed.id, ok: false, error: badReplyTo });
    const properties = packet?.properties;
    if (properties?.responseTopic) replyTo.responseTopic = properties.responseTopic;
    if (properties?.correlationData) replyTo.correlationData = properties.correlationData;

    if ('error' in parsed) return this.reply(replyTo, { id: parsed.id, ok: false, error: parsed.error });
    const { id, body } = parsed;
    const key = `${command}\u0000${id}`;
    const digest = createHash('sha256').update(payload).digest('base64');

    // The signature is checked before anything else looks at the request, except a true
    // redelivery (the same bytes as a request running or answered), which runs nothing again.
    let admitted: Admitted | undefined;
    if (this.options.signing && !this.isRedelivery(key, digest)) {
      try {
        admitted = await this.options.signing.verifyRequest(command, body);
      } catch (err) {
        return this.reply(replyTo, { id, ok: false, error: this.refusal(err, command, id) });
      }
    }

    const running = this.running.get(key);
    if (running) {
      if (running.digest !== digest) return this.reply(replyTo, duplicateId(command, id, 'is still running'));
      if (running.waiting.length >= MAX_WAITING_REDELIVERIES) {
        const message = `request "${id}" (${command}) is still running; its answer will follow`;
        return this.reply(replyTo, { id, ok: false, error: { code: 'in_progress', message } });
      }
      // A true redelivery while it runs: answered with the same answer when it comes.
      running.waiting.push(replyTo);
      return undefined;
    }
    const previous = this.answered.get(key);
    if (previous) {
      if (previous.digest !== digest) return this.reply(replyTo, duplicateId(command, id, 'was already answered'));
      return this.reply(replyTo, previous.response);
    }

    const resolved = this.resolve(command, body);
    if ('error' in resolved) return this.reply(replyTo, { id, ok: false, error: resolved.error });
    const { args, registered } = resolved;
    const lane = registered.lane;
    if (this.inFlight[lane] >= this.limits[lane]) {
      const what = lane === 'long' ? 'long commands (pull, push, update, ...)' : 'commands';
      const message = `${this.inFlight[lane]} ${what} are already running; try again shortly`;
      return this.reply(replyTo, { id, ok: false, error: { code: 'busy', message } });
    }

    // Its signature is marked used only now that it runs: a `busy` or `invalid_args` answer leaves it
    // good for a retry. Nothing is awaited between here and running.set: a copy arriving meanwhile
    // is a redelivery.
    try {
      admitted?.claim();
    } catch (err) {
      return this.reply(replyTo, { id, ok: false, error: this.refusal(err, command, id) });
    }
    const entry: Running = { digest, waiting: [] };
    this.running.set(key, entry);
    this.inFlight[lane] += 1;
    let response: CommandResponse;
    try {
      // The arguments passed the command's request schema just now, which its argument type is
      // generated from (command-map.ts): the one place they go from unknown to typed.
      const result = await registered.definition.run(args as CommandArgs<CommandName>, {
        requestId: id,
        progress: (fields, type) => this.options.bus.emit(type, { ...fields, id }),
      });
      response = { id, ok: true, result: result ?? null };
    } catch (err) {
      const info = toErrorInfo(err);
      if (!(err instanceof AgentError))
        this.options.logger.error('command failed unexpectedly', { command, id, error: err as Error });
      response = { id, ok: false, error: info };
    } finally {
      this.inFlight[lane] -= 1;
      this.running.delete(key);
    }
    const bytes = this.publish(replyTo, response, entry.waiting);
    this.remember(key, { digest, response, bytes });
    return response;
  }

  /** Why the request's MQTT 5 reply properties cannot be honoured, or undefined. */
  private replyProblem(packet: Pick<IPublishPacket, 'properties'> | undefined): ErrorInfo | undefined {
    const properties = packet?.properties;
    if (!properties) return undefined;
    const { responseTopic, correlationData } = properties;
    if (responseTopic !== undefined) {
      const problem = this.options.topics.responseTopicProblem(responseTopic);
      if (problem) {
        return { code: 'bad_response_topic', message: `the response topic cannot be answered on: ${problem}` };
      }
    }
    if (correlationData !== undefined && correlationData.length > MAX_CORRELATION_BYTES) {
      const message = `correlation data is ${correlationData.length} bytes; the limit is ${MAX_CORRELATION_BYTES}`;
      return { code: 'bad_correlation_data', message };
    }
    return undefined;
  }

  private isRedelivery(key: string, digest: string): boolean {
    return this.running.get(key)?.digest === digest || this.answered.get(key)?.digest === digest;
  }

  /** An `unauthorized` answer with its reason; a refusal the signing code did not foresee is logged. */
  private refusal(err: unknown, command: string, id: string): { code: string; message: string; reason: string } {
    const reason = reasonOf(err);
    if (reason === undefined) {
      this.options.logger.error('signature check failed unexpectedly', { command, id, error: err as Error });
      const message = 'request refused: its signature could not be checked';
      return { code: 'unauthorized', message, reason: 'bad_token' };
    }
    // Whoever publishes unsigned requests chooses how many: one log line per interval, with a count.
    const now = Date.now();
    if (now - this.unauthorizedLog.at >= UNAUTHORIZED_LOG_INTERVAL_MS) {
      const { suppressed } = this.unauthorizedLog;
      const fields = { command, id, reason, ...(suppressed ? { suppressed } : {}) };
      this.options.logger.warn('request refused: unauthorized', fields);
      this.unauthorizedLog = { at: now, suppressed: 0 };
    } else {
      this.unauthorizedLog.suppressed += 1;
    }
    return { code: 'unauthorized', message: `request refused: ${(err as Error).message}`, reason };
  }

  /** The envelope: size, JSON, an object with an id. Nothing about the command yet. */
  private parse(
    payload: Buffer,
  ): { id: string; body: Record<string, unknown> } | { id: string | null; error: { code: string; message: string } } {
    if (payload.length > MAX_REQUEST_BYTES) {
      return {
        id: null,
        error: { code: 'too_large', message: `request is ${payload.length} bytes; the limit is ${MAX_REQUEST_BYTES}` },
      };
    }
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch (err) {
      return { id: null, error: { code: 'bad_json', message: `request is not JSON: ${(err as Error).message}` } };
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return {
        id: null,
        error: { code: 'bad_request', message: 'request must be a JSON object {"id": "...", ...arguments}' },
      };
    }
    const { id } = body as Record<string, unknown>;
    if (typeof id !== 'string' || id.length === 0 || id.length > 128) {
      return {
        id: null,
        error: { code: 'bad_request', message: 'request needs a string "id" (1 to 128 characters) to answer to' },
      };
    }
    return { id, body: body as Record<string, unknown> };
  }

  /** The command and its arguments (without id and signature), checked against its schema. */
  private resolve(
    command: string,
    body: Record<string, unknown>,
  ): { args: Record<string, unknown>; registered: RegisteredCommand } | { error: { code: string; message: string } } {
    const { id: _id, [SIGNATURE_FIELD]: _signature, ...args } = body;
    const registered = this.commands.get(command);
    if (!registered) {
      const message = `unknown command "${command.slice(0, 64)}"; known: ${this.names.join(', ')}`;
      return { error: { code: 'unknown_command', message } };
    }
    const problems = registered.schemas.request.problems(args);
    if (problems.length > 0) {
      // Problems name the keys they are about, and whoever sent the request chose those names.
      const listed = problems.slice(0, 10).map((p) => (p.length > 200 ? `${p.slice(0, 200)}...` : p));
      const more = problems.length > 10 ? `; and ${problems.length - 10} more` : '';
      return { error: { code: 'invalid_args', message: listed.join('; ') + more } };
    }
    return { args, registered };
  }

  private reply(to: ReplyTo, response: CommandResponse): CommandResponse {
    this.publish(to, response, []);
    return response;
  }

  /** Publishes the answer to the request and to any redeliveries that waited; returns its size. */
  private publish(to: ReplyTo, response: CommandResponse, alsoTo: ReplyTo[]): number {
    const payload = JSON.stringify(response);
    const { link, topics } = this.options;
    // Every request gets its own answer on <b>/response/<command>, a redelivery too.
    for (const destination of [to, ...alsoTo]) {
      link.send({ topic: topics.response(destination.command), payload, qos: 1, retain: false }, 'queue');
      if (destination.responseTopic) {
        const properties = destination.correlationData ? { correlationData: destination.correlationData } : undefined;
        const message = { topic: destination.responseTopic, payload, qos: 1 as const, retain: false };
        link.send({ ...message, ...(properties ? { properties } : {}) }, 'queue');
      }
    }
    return payload.length;
  }

  private remember(key: string, answer: Answered): void {
    // An answer too big to keep (a whole state) is not kept: a redelivery runs it again, which
    // is harmless for the read-only commands whose answers are that large.
    if (answer.bytes > MAX_REMEMBERED_BYTES / 8) return;
    this.answered.set(key, answer);
    this.answeredBytes += answer.bytes;
    while (this.answered.size > MAX_REMEMBERED_ANSWERS || this.answeredBytes > MAX_REMEMBERED_BYTES) {
      const [oldestKey, oldest] = this.answered.entries().next().value as [string, Answered];
      this.answered.delete(oldestKey);
      this.answeredBytes -= oldest.bytes;
    }
  }
}

function duplicateId(command: string, id: string, what: string): CommandResponse {
  return {
    id,
    ok: false,
    error: {
      code: 'duplicate_id',
      message: `request id "${id}" of ${command} ${what} with other arguments; use a new id for a new request`,
    },
  };
}
