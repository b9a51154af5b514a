import type { IPublishPacket } from 'mqtt';
import { AgentError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { MqttLink } from '../mqtt/mqtt-link.js';
import type { CommandResponse, Topics } from '../mqtt/topics.js';
import type { EventBus } from '../state/event-bus.js';
import type { CommandDefinition } from './command.js';
import { loadCommandSchemas, type CommandSchemas } from './command-schemas.js';

export const MAX_REQUEST_BYTES = 256 * 1024;

export interface CommandRouterOptions {
  link: MqttLink;
  topics: Topics;
  bus: EventBus;
  logger: Logger;
  commands: CommandDefinition[];
  /** Commands running at once; beyond it a request is answered `busy` rather than queued without end. */
  maxInFlight?: number;
}

interface RegisteredCommand {
  definition: CommandDefinition;
  schemas: CommandSchemas;
}

interface ReplyTo {
  command: string;
  responseTopic?: string;
  correlationData?: Buffer;
}

/**
 * Turns <b>/request/<command> messages into calls and answers every one of them on
 * <b>/response/<command> (and the MQTT 5 response topic when given). Bad input is answered with
 * a code at once; a handler that throws or rejects becomes an error response, never a crash.
 */
export class CommandRouter {
  readonly name = 'commands';
  private readonly commands = new Map<string, RegisteredCommand>();
  /** Recent answers by request id: a QoS 1 redelivery gets the same answer, not a second run. */
  private readonly answered = new Map<string, CommandResponse | 'running'>();
  private inFlight = 0;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly options: CommandRouterOptions) {
    for (const definition of options.commands) {
      if (this.commands.has(definition.name)) throw new AgentError('command_duplicate', `command "${definition.name}" registered twice`);
      this.commands.set(definition.name, { definition, schemas: loadCommandSchemas(definition.name) });
    }
  }

  get names(): string[] {
    return [...this.commands.keys()].sort();
  }

  async start(): Promise<void> {
    this.unsubscribe = this.options.link.onMessage((topic, payload, packet) => {
      const command = this.options.topics.commandOf(topic);
      if (command === undefined) return;
      this.handle(command, payload, packet).catch((err: unknown) => this.options.logger.error('command boundary failed', { command, error: err as Error }));
    });
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Public for tests that drive the router without a broker. */
  async handle(command: string, payload: Buffer, packet?: Pick<IPublishPacket, 'properties'>): Promise<CommandResponse | undefined> {
    const replyTo: ReplyTo = { command };
    // A response topic inside our own request space would feed answers back in as requests.
    const responseTopic = packet?.properties?.responseTopic;
    if (responseTopic && this.options.topics.commandOf(responseTopic) === undefined) replyTo.responseTopic = responseTopic;
    if (packet?.properties?.correlationData) replyTo.correlationData = packet.properties.correlationData;

    const parsed = this.parse(command, payload);
    if ('error' in parsed) return this.reply(replyTo, { id: parsed.id, ok: false, error: parsed.error });
    const { id, args, registered } = parsed;

    const previous = this.answered.get(id);
    if (previous === 'running') return undefined;
    if (previous) return this.reply(replyTo, previous);

    if (this.inFlight >= (this.options.maxInFlight ?? 8)) {
      return this.reply(replyTo, { id, ok: false, error: { code: 'busy', message: `${this.inFlight} commands are already running; try again shortly` } });
    }

    this.remember(id, 'running');
    this.inFlight += 1;
    let response: CommandResponse;
    try {
      const result = await registered.definition.run(args, {
        requestId: id,
        progress: (fields, type) => this.options.bus.emit(type ?? `${command}.progress`, { ...fields, id }),
      });
      response = { id, ok: true, result: result ?? null };
    } catch (err) {
      const info = toErrorInfo(err);
      if (!(err instanceof AgentError)) this.options.logger.error('command failed unexpectedly', { command, id, error: err as Error });
      response = { id, ok: false, error: info };
    } finally {
      this.inFlight -= 1;
    }
    this.remember(id, response);
    return this.reply(replyTo, response);
  }

  private parse(
    command: string,
    payload: Buffer,
  ): { id: string; args: Record<string, unknown>; registered: RegisteredCommand } | { id: string | null; error: { code: string; message: string } } {
    if (payload.length > MAX_REQUEST_BYTES) {
      return { id: null, error: { code: 'too_large', message: `request is ${payload.length} bytes; the limit is ${MAX_REQUEST_BYTES}` } };
    }
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch (err) {
      return { id: null, error: { code: 'bad_json', message: `request is not JSON: ${(err as Error).message}` } };
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return { id: null, error: { code: 'bad_request', message: 'request must be a JSON object {"id": "...", ...arguments}' } };
    }
    const { id, ...args } = body as Record<string, unknown>;
    if (typeof id !== 'string' || id.length === 0 || id.length > 128) {
      return { id: null, error: { code: 'bad_request', message: 'request needs a string "id" (1 to 128 characters) to answer to' } };
    }
    const registered = this.commands.get(command);
    if (!registered) {
      return { id, error: { code: 'unknown_command', message: `unknown command "${command}"; known: ${this.names.join(', ')}` } };
    }
    const problems = registered.schemas.request.problems(args);
    if (problems.length > 0) return { id, error: { code: 'invalid_args', message: problems.join('; ') } };
    return { id, args, registered };
  }

  private reply(to: ReplyTo, response: CommandResponse): CommandResponse {
    const payload = JSON.stringify(response);
    const { link, topics } = this.options;
    link.send({ topic: topics.response(to.command), payload, qos: 1, retain: false }, 'queue');
    if (to.responseTopic) {
      const properties = to.correlationData ? { correlationData: to.correlationData } : undefined;
      link.send({ topic: to.responseTopic, payload, qos: 1, retain: false, ...(properties ? { properties } : {}) }, 'queue');
    }
    return response;
  }

  private remember(id: string, value: CommandResponse | 'running'): void {
    this.answered.delete(id);
    this.answered.set(id, value);
    if (this.answered.size > 256) this.answered.delete(this.answered.keys().next().value as string);
  }
}
