import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as netConnect, isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import mqtt, { MqttClient, type IClientOptions, type IClientPublishOptions, type IPublishPacket } from 'mqtt';
import { Backoff } from '../core/backoff.js';
import { BoundedQueue } from '../core/bounded-queue.js';
import { AgentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

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

  constructor(private readonly options: MqttLinkOptions) {
    this.backoff = new Backoff({ initialMs: options.reconnect.initialMs, maxMs: options.reconnect.maxMs, random: options.random });
    this.queue = new BoundedQueue(options.queueCapacity);
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  get stats(): { connected: boolean; reconnects: number; queued: number; dropped: number; lastError?: { code: string; message: string } } {
    return { connected: this.connected, reconnects: this.reconnectCount, queued: this.queue.length, dropped: this.queue.dropped, ...(this.lastError ? { lastError: this.lastError } : {}) };
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
    client.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      this.lastError = { code: typeof code === 'string' ? code.toLowerCase() : `mqtt_${String(code ?? 'error')}`, message: err.message };
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
      await withTimeout(this.publishNow({ topic: this.options.availabilityTopic, payload: 'offline', qos: 1, retain: true }), budgetMs / 2).catch(
        (err: unknown) => this.options.logger.warn('could not publish offline before stopping', { error: err as Error }),
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
    if (!this.connected) {
      if (whenOffline === 'queue') this.queue.push(message);
      return;
    }
    this.publishNow(message).catch((err: unknown) => {
      if (whenOffline === 'queue') this.queue.push(message);
      this.options.logger.debug('publish failed', { topic: message.topic, error: err as Error });
    });
  }

  /** Resolves when the broker acknowledged (QoS 1) or the packet was written (QoS 0). */
  publishNow(message: OutboundMessage): Promise<void> {
    const client = this.client;
    if (!client?.connected) return Promise.reject(new AgentError('mqtt_offline', 'not connected to the broker'));
    const options: IClientPublishOptions = { qos: message.qos, retain: message.retain };
    if (message.properties && this.options.protocolVersion === 5) options.properties = message.properties;
    return new Promise((resolve, reject) => {
      client.publish(message.topic, message.payload, options, (err) => (err ? reject(err) : resolve()));
    });
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
    if (o.protocolVersion === 5) options.properties = { sessionExpiryInterval: o.sessionExpirySeconds };
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
    this.backoff.reset();
    this.lastError = undefined;
    this.options.logger.info('connected to broker', { url: this.url(), clientId: this.options.clientId });
    this.publishNow({ topic: this.options.availabilityTopic, payload: 'online', qos: 1, retain: true }).catch((err: unknown) =>
      this.options.logger.warn('could not publish online', { error: err as Error }),
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
    if (this.reconnectTimer) return;
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
  if (scheme === 'ws' || scheme === 'wss') return mqtt.connect(url, options);
  const secure = scheme === 'mqtts' || scheme === 'ssl' || scheme === 'tls';
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = parsed.port ? Number(parsed.port) : secure ? 8883 : 1883;
  const streamBuilder = () =>
    secure
      ? tlsConnect({
          host,
          port,
          // SNI carries host names only; an IP address there is refused by Node.
          ...(isIP(host) ? {} : { servername: host }),
          rejectUnauthorized: true,
          ...(options.ca ? { ca: options.ca as Buffer } : {}),
          ...(options.cert ? { cert: options.cert as Buffer } : {}),
          ...(options.key ? { key: options.key as Buffer } : {}),
        })
      : netConnect({ host, port });
  return new MqttClient(streamBuilder, { ...options, host, port, protocol: secure ? 'mqtts' : 'mqtt' });
}

function readPem(file: string, key: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new AgentError('mqtt_tls_file', `${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AgentError('timeout', `no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
