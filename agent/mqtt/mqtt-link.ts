import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as netConnect, isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import mqtt, { MqttClient, type IClientOptions, type IClientPublishOptions, type IPublishPacket } from 'mqtt';
import { Backoff } from '../core/backoff.js';
import { BoundedQueue } from '../core/bounded-queue.js';
import { AgentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { publishTopicProblem } from './topics.js';

/**
 * Bytes written to the socket but not yet taken by the kernel beyond which messages wait in the
 * bounded queue instead (a flood of answers to a broker that reads slowly must not grow memory).
 */
export const MAX_WRITE_BACKLOG_BYTES = 4 * 1024 * 1024;
/** Largest packet the agent takes from the broker (MQTT 5 Maximum Packet Size). */
export const MAX_INCOMING_PACKET_BYTES = 1024 * 1024;

/**
 * MQTT 5 DISCONNECT reasons by which the broker says a packet we sent was at fault (malformed,
 * protocol error, topic name invalid, receive maximum exceeded, too large, payload format
 * invalid): the oldest unacknowledged publish is that packet, since the broker reads in order.
 */
const PACKET_FAULTS = new Set([0x81, 0x82, 0x90, 0x93, 0x95, 0x99]);
/** The error MQTT.js gives the callback of a publish removeOutgoingMessage() dropped. */
const POISON_REMOVED = 'Message removed';

export interface OutboundMessage {
  topic: string;
  payload: string | Buffer;
  qos: 0 | 1;
  retain: boolean;
  properties?: IClientPublishOptions['properties'];
}

export interface MqttLinkOptions {
  /** Read at each start (the embedded broker's port is known only once it listens). */
  url: string | (() => string);
  clientId: string;
  protocolVersion: 4 | 5;
  username?: string;
  password?: string;
  /** PEM file paths; read at each start so a renewed certificate is picked up on retry. */
  tls?: { ca?: string; cert?: string; key?: string };
  keepaliveSeconds: number;
  sessionExpirySeconds: number;
  /** Retained "online" on connect, "offline" before a clean stop and as the last will. */
  availabilityTopic: string;
  /** Subscribed (QoS 1) after every connect: a fresh session must not lose them. */
  subscriptions: string[];
  reconnect: { initialMs: number; maxMs: number };
  /** Messages kept while disconnected (events, late responses); the oldest go first. */
  queueCapacity: number;
  logger: Logger;
  random?: () => number;
}

export type MessageListener = (topic: string, payload: Buffer, packet: IPublishPacket) => void;

/**
 * The robot's one connection to its broker. MQTT.js's own reconnect has a fixed period and an
 * unbounded offline queue; here reconnects back off with jitter, and only what the agent chose
 * to keep (a bounded queue of events and responses) waits for the next connection. Retained
 * topics (state, availability) are republished by their owners on every connect instead.
 */
export class MqttLink {
  readonly name = 'mqtt';
  private client: MqttClient | undefined;
  private readonly backoff: Backoff;
  private readonly queue: BoundedQueue<OutboundMessage>;
  private readonly emitter = new EventEmitter();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private reconnectCount = 0;
  private lastError: { code: string; message: string } | undefined;
  /** The reason code of the broker's last DISCONNECT (MQTT 5), read when the socket closes. */
  private disconnectReason: number | undefined;
  /** Whether CONNACK came since the last close: only a session that really ran can blame a message. */
  private sessionRan = false;
  /** The oldest unacknowledged publish at the last close; still the oldest at the next: poison. */
  private suspect: { messageId: number; topic: string } | undefined;
  private refusedCount = 0;
  private drainWaiting = false;
  /** When the current session began (CONNACK); a session that lasted resets the backoff. */
  private connectedAt: number | undefined;

  constructor(private readonly options: MqttLinkOptions) {
    this.backoff = new Backoff({
      initialMs: options.reconnect.initialMs,
      maxMs: options.reconnect.maxMs,
      random: options.random,
    });
    this.queue = new BoundedQueue(options.queueCapacity);
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  get stats(): {
    connected: boolean;
    reconnects: number;
    queued: number;
    dropped: number;
    refused: number;
    lastError?: { code: string; message: string };
  } {
    return {
      connected: this.connected,
      reconnects: this.reconnectCount,
      queued: this.queue.length,
      dropped: this.queue.dropped,
      refused: this.refusedCount,
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  onConnect(listener: () => void): () => void {
    this.emitter.on('connect', listener);
    return () => this.emitter.off('connect', listener);
  }

  onDisconnect(listener: () => void): () => void {
    this.emitter.on('disconnect', listener);
    return () => this.emitter.off('disconnect', listener);
  }

  onMessage(listener: MessageListener): () => void {
    this.emitter.on('message', listener);
    return () => this.emitter.off('message', listener);
  }

  /** Begins connecting and returns; a broker that is down is retried, never fatal. */
  async start(): Promise<void> {
    this.stopping = false;
    const client = createClient(this.url(), this.clientOptions());
    this.client = client;
    client.on('connect', () => this.handleConnect());
    client.on('message', (topic, payload, packet) => this.emitter.emit('message', topic, payload, packet));
    client.on('disconnect', (packet) => {
      this.disconnectReason = packet.reasonCode;
    });
    // MQTT.js emits 'connect' only once the resent publishes were acknowledged; a session in which
    // one of them killed the connection began at CONNACK all the same.
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'connack' && !(packet.reasonCode ?? packet.returnCode)) this.sessionRan = true;
    });
    client.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      this.lastError = {
        code: typeof code === 'string' ? code.toLowerCase() : `mqtt_${typeof code === 'number' ? code : 'error'}`,
        message: err.message,
      };
      this.options.logger.warn('broker connection error', { error: this.lastError });
    });
    client.on('close', () => this.handleClose());
  }

  /** Publishes offline (best effort, bounded in time) and disconnects. */
  async stop(budgetMs = 2000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    if (!client) return;
    if (client.connected) {
      await withTimeout(
        this.publishNow({ topic: this.options.availabilityTopic, payload: 'offline', qos: 1, retain: true }),
        budgetMs / 2,
      ).catch((err: unknown) =>
        this.options.logger.warn('could not publish offline before stopping', { error: err as Error }),
      );
    }
    await withTimeout(client.endAsync(false), budgetMs / 2).catch(() => client.end(true));
    this.client = undefined;
  }

  /**
   * Sends when connected; otherwise queues (when asked) for the next connection. Never waits for
   * a broker that is not there.
   */
  send(message: OutboundMessage, whenOffline: 'queue' | 'drop'): void {
    const problem = publishTopicProblem(message.topic);
    if (problem) {
      // Never sent, never queued: the broker would drop the connection, again after every reconnect.
      this.refusedCount += 1;
      this.options.logger.warn('message not published: its topic is invalid', {
        topic: message.topic.slice(0, 200),
        problem,
      });
      return;
    }
    if (!this.connected || this.congested()) {
      if (whenOffline === 'queue') this.queue.push(message);
      return;
    }
    this.publishNow(message).catch((err: unknown) => {
      // A message the broker refused (a reason code, or dropped as poison) is not sent again:
      // one bad message costs that message, not the link.
      const refused = isRefusal(err);
      // Dropped as poison: counted where it was dropped.
      if (refused && (err as Error).message !== POISON_REMOVED) this.refusedCount += 1;
      if (whenOffline === 'queue' && !refused) this.queue.push(message);
      const fields = { topic: message.topic.slice(0, 200), error: err as Error };
      this.options.logger[refused ? 'warn' : 'debug']('publish failed', fields);
    });
  }

  /** Resolves when the broker acknowledged (QoS 1) or the packet was written (QoS 0). */
  publishNow(message: OutboundMessage): Promise<void> {
    const client = this.client;
    const problem = publishTopicProblem(message.topic);
    if (problem) {
      const named = message.topic.slice(0, 200);
      return Promise.reject(new AgentError('bad_topic', `cannot publish to "${named}": ${problem}`));
    }
    if (!client?.connected) return Promise.reject(new AgentError('mqtt_offline', 'not connected to the broker'));
    const options: IClientPublishOptions = { qos: message.qos, retain: message.retain };
    if (message.properties && this.options.protocolVersion === 5) options.properties = message.properties;
    return new Promise((resolve, reject) => {
      client.publish(message.topic, message.payload, options, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * Whether the socket holds more unsent bytes than MAX_WRITE_BACKLOG_BYTES; if so, the queue is
   * flushed again once it drained.
   */
  private congested(): boolean {
    const stream = this.client?.stream as (Duplex & { writableLength?: number }) | undefined;
    if (!stream || (stream.writableLength ?? 0) <= MAX_WRITE_BACKLOG_BYTES) return false;
    if (!this.drainWaiting) {
      this.drainWaiting = true;
      stream.once('drain', () => {
        this.drainWaiting = false;
        if (this.connected) for (const message of this.queue.drain()) this.send(message, 'queue');
      });
      stream.once('close', () => {
        this.drainWaiting = false;
      });
    }
    return true;
  }

  private url(): string {
    return typeof this.options.url === 'function' ? this.options.url() : this.options.url;
  }

  private clientOptions(): IClientOptions {
    const o = this.options;
    const options: IClientOptions = {
      clientId: o.clientId,
      protocolVersion: o.protocolVersion,
      keepalive: o.keepaliveSeconds,
      // A persistent session keeps QoS 1 requests for a robot that blinked off Wi-Fi.
      clean: false,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      queueQoSZero: false,
      resubscribe: false,
      // mqtt-packet's number cache is 65,536 prebuilt buffers (~7 MiB of heap) for high-rate
      // publishers; a robot sends a few messages a minute.
      writeCache: false,
      will: { topic: o.availabilityTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
    };
    // The broker drops what is bigger instead of sending it: a request over 1 MiB never reaches
    // the agent's memory (the router answers too_large from 256 KiB). MQTT 3.1.1 has no such limit.
    if (o.protocolVersion === 5) {
      options.properties = {
        sessionExpiryInterval: o.sessionExpirySeconds,
        maximumPacketSize: MAX_INCOMING_PACKET_BYTES,
      };
    }
    if (o.username !== undefined) options.username = o.username;
    if (o.password !== undefined) options.password = o.password;
    if (o.tls) {
      options.rejectUnauthorized = true;
      if (o.tls.ca) options.ca = readPem(o.tls.ca, 'mqtt.ca');
      if (o.tls.cert) options.cert = readPem(o.tls.cert, 'mqtt.cert');
      if (o.tls.key) options.key = readPem(o.tls.key, 'mqtt.key');
    }
    return options;
  }

  private handleConnect(): void {
    // Not the backoff's reset yet: a broker that drops the session right after CONNACK (another
    // client with this id takes it over, an ACL that kicks) would be redialled at the first step
    // for ever. The session must last (handleClose).
    this.connectedAt = Date.now();
    this.lastError = undefined;
    this.options.logger.info('connected to broker', { url: this.url(), clientId: this.options.clientId });
    this.publishNow({ topic: this.options.availabilityTopic, payload: 'online', qos: 1, retain: true }).catch(
      (err: unknown) => this.options.logger.warn('could not publish online', { error: err as Error }),
    );
    if (this.options.subscriptions.length > 0) {
      this.client?.subscribe(this.options.subscriptions, { qos: 1 }, (err) => {
        if (err) this.options.logger.error('subscribe failed', { error: err });
      });
    }
    for (const message of this.queue.drain()) this.send(message, 'queue');
    this.emitter.emit('connect');
  }

  private handleClose(): void {
    if (this.stopping) return;
    this.emitter.emit('disconnect');
    const blamed = this.disconnectReason !== undefined && PACKET_FAULTS.has(this.disconnectReason);
    const ran = this.sessionRan;
    this.disconnectReason = undefined;
    this.sessionRan = false;
    const lasted = this.connectedAt !== undefined && Date.now() - this.connectedAt >= this.stableMs();
    this.connectedAt = undefined;
    if (lasted) this.backoff.reset();
    if (this.reconnectTimer) return;
    // Settled before the reconnect is scheduled, so a poison message is gone before it could be resent.
    this.dropPoison(blamed, ran)
      .catch((err: unknown) => {
        this.options.logger.warn('could not inspect unacknowledged messages', { error: err as Error });
      })
      .finally(() => this.scheduleReconnect());
  }

  /**
   * With a persistent session MQTT.js resends unacknowledged publishes after every reconnect. A
   * publish the broker cannot take (it drops the connection for it) would then cost the link
   * forever. The broker reads in order, so the oldest unacknowledged publish is the one at fault
   * when the broker blames a packet (MQTT 5 reason code), or when it was already the oldest at the
   * previous close of a session that ran (MQTT 3.1.1 brokers just close): it is dropped, once.
   */
  private async dropPoison(blamed: boolean, ran: boolean): Promise<void> {
    const client = this.client;
    if (!client) return;
    const oldest = await oldestPublish(client);
    if (!oldest) {
      this.suspect = undefined;
      return;
    }
    const again = this.suspect?.messageId === oldest.messageId && this.suspect.topic === oldest.topic;
    if (!blamed && !(again && ran)) {
      if (ran) this.suspect = oldest;
      return;
    }
    this.suspect = undefined;
    this.refusedCount += 1;
    const fields = { topic: oldest.topic.slice(0, 200), blamed };
    this.options.logger.warn('dropped a message the broker refused; it will not be sent again', fields);
    if (client.outgoing[oldest.messageId]) client.removeOutgoingMessage(oldest.messageId);
    else client.outgoingStore.del({ messageId: oldest.messageId }, () => undefined);
  }

  /** How long a session must last to count as a success: the longest delay, at most 10 s. */
  private stableMs(): number {
    return Math.min(this.options.reconnect.maxMs, 10_000);
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.reconnectTimer || this.connected) return;
    const delay = this.backoff.next();
    this.options.logger.info('broker connection closed; reconnecting', { inMs: delay });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      const client = this.client;
      if (this.stopping || !client) return;
      this.reconnectCount += 1;
      // Passing the stores keeps unacknowledged QoS 1 messages; reconnect() alone would drop them.
      client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
    }, delay);
  }
}

/**
 * mqtt.connect() loads every transport it knows (websockets, SOCKS proxies: ~8 MiB of heap a
 * robot on mqtt:// or mqtts:// never uses), so plain and TLS TCP get their stream from here and
 * only ws:// and wss:// go through it.
 */
function createClient(url: string, options: IClientOptions): MqttClient {
  const parsed = new URL(url);
  const scheme = parsed.protocol.replace(/:$/, '');
  // ws (the library under MQTT.js's websockets) sets TCP_NODELAY on its sockets itself.
  if (scheme === 'ws' || scheme === 'wss') return mqtt.connect(url, options);
  const { streamBuilder, host, port, secure } = mqttStreamBuilder(url, options);
  return new MqttClient(streamBuilder, { ...options, host, port, protocol: secure ? 'mqtts' : 'mqtt' });
}

/**
 * The socket under an mqtt:// or mqtts:// link. TCP_NODELAY on: with Nagle's algorithm, a small
 * answer written while the previous packet's ACK is outstanding (delayed ACK, ~40 ms) waits for
 * it; a ping took ~40 ms instead of ~0.5 ms. Exported for the test that checks it is set.
 */
export function mqttStreamBuilder(
  url: string,
  tls: Pick<IClientOptions, 'ca' | 'cert' | 'key'> = {},
): { streamBuilder: () => Duplex; host: string; port: number; secure: boolean } {
  const parsed = new URL(url);
  const scheme = parsed.protocol.replace(/:$/, '');
  const secure = scheme === 'mqtts' || scheme === 'ssl' || scheme === 'tls';
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = parsed.port ? Number(parsed.port) : secure ? 8883 : 1883;
  const streamBuilder = (): Duplex => {
    if (!secure) return netConnect({ host, port, noDelay: true });
    const socket = tlsConnect({
      host,
      port,
      // SNI carries host names only; an IP address there is refused by Node.
      ...(isIP(host) ? {} : { servername: host }),
      rejectUnauthorized: true,
      ...(tls.ca ? { ca: tls.ca as Buffer } : {}),
      ...(tls.cert ? { cert: tls.cert as Buffer } : {}),
      ...(tls.key ? { key: tls.key as Buffer } : {}),
    });
    // tls.connect() takes no noDelay option; set before connecting, it applies once connected.
    socket.setNoDelay(true);
    return socket;
  };
  return { streamBuilder, host, port, secure };
}

/** The oldest publish MQTT.js holds unacknowledged (its store keeps them in the order sent). */
async function oldestPublish(client: MqttClient): Promise<{ messageId: number; topic: string } | undefined> {
  type Stored = { cmd?: string; messageId?: number; topic?: string };
  const stream = client.outgoingStore.createStream() as AsyncIterable<Stored> & { destroy(): void };
  try {
    for await (const packet of stream) {
      if (packet.cmd === 'publish' && typeof packet.messageId === 'number') {
        return { messageId: packet.messageId, topic: String(packet.topic) };
      }
    }
    return undefined;
  } finally {
    stream.destroy();
  }
}

/** A publish the broker answered with a failure reason code, or one dropped as poison. */
function isRefusal(err: unknown): boolean {
  return typeof (err as { code?: unknown }).code === 'number' || (err as Error).message === POISON_REMOVED;
}

function readPem(file: string, key: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new AgentError(
      'mqtt_tls_file',
      `${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AgentError('timeout', `no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
