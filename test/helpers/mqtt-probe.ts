import { connect as netConnect } from 'node:net';
import mqtt, { MqttClient, type IClientOptions, type IPublishPacket } from 'mqtt';
import { scaled } from './time-scale.js';

export interface Received {
  topic: string;
  payload: Buffer;
  text: string;
  retain: boolean;
  packet: IPublishPacket;
  at: number;
}

/**
 * The embedded brokers of agents the harness started, by port: every client must log in, and a
 * probe given no username on one of them logs in as an on-robot tool would. Tests of the refusal
 * itself connect with mqtt directly.
 */
export const embeddedBrokerLogins = new Map<string, { username: string; password: string }>();

/**
 * A dashboard stand-in: a real MQTT client that records everything it receives on its
 * subscriptions and waits for what a test expects, with a deadline.
 */
export class MqttProbe {
  readonly received: Received[] = [];
  private waiters: Array<() => void> = [];

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.received.push({
        topic,
        payload,
        text: payload.toString('utf8'),
        retain: packet.retain,
        packet,
        at: Date.now(),
      });
      for (const wake of this.waiters.splice(0)) wake();
    });
    client.on('error', () => undefined);
  }

  /**
   * Listens before it connects: a resumed session's queued messages can arrive in the same read
   * as CONNACK, before connectAsync's caller could attach a listener.
   */
  static async connect(url: string, options: IClientOptions = {}): Promise<MqttProbe> {
    const login = options.username === undefined ? embeddedBrokerLogins.get(new URL(url).port) : undefined;
    const clientId = `probe-${Math.random().toString(16).slice(2)}`;
    const all: IClientOptions = { reconnectPeriod: 200, connectTimeout: 5000, clientId, ...login, ...options };
    const client = plainTcp(url, all) ?? mqtt.connect(url, all);
    const probe = new MqttProbe(client);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`probe could not connect to ${url} within 5 s`)), 5000);
        client.once('connect', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    } catch (err) {
      await client.endAsync(true).catch(() => undefined);
      throw err;
    }
    return probe;
  }

  async subscribe(...topics: string[]): Promise<void> {
    await this.client.subscribeAsync(topics, { qos: 1 });
  }

  /** Resolves with the first message (already received or to come) matching, or throws after ms. */
  async waitFor(match: (m: Received) => boolean, ms = 5000, what = 'message'): Promise<Received> {
    const deadline = Date.now() + scaled(ms);
    for (;;) {
      const found = this.received.find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = this.received
          .map((m) => `${m.topic} ${m.text.slice(0, 120)}`)
          .slice(-10)
          .join('\n  ');
        throw new Error(`timed out after ${ms} ms waiting for ${what}; last received:\n  ${seen || '(nothing)'}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  waitForTopic(topic: string, ms?: number, match: (m: Received) => boolean = () => true): Promise<Received> {
    return this.waitFor((m) => m.topic === topic && match(m), ms, `a message on ${topic}`);
  }

  /** Sends a request and returns the parsed response with the same id. */
  async request(
    base: string,
    command: string,
    body: Record<string, unknown> | string | Buffer,
    ms = 5000,
  ): Promise<Record<string, unknown>> {
    const responseTopic = `${base}/response/${command}`;
    const payload = typeof body === 'object' && !Buffer.isBuffer(body) ? JSON.stringify(body) : body;
    const id = typeof body === 'object' && !Buffer.isBuffer(body) ? body.id : undefined;
    const since = Date.now();
    await this.client.publishAsync(`${base}/request/${command}`, payload, { qos: 1 });
    const reply = await this.waitFor(
      (m) =>
        m.topic === responseTopic &&
        m.at >= since &&
        (id === undefined || (JSON.parse(m.text) as { id?: unknown }).id === id),
      ms,
      `a response on ${responseTopic}`,
    );
    return JSON.parse(reply.text) as Record<string, unknown>;
  }

  messagesOn(topic: string): Received[] {
    return this.received.filter((m) => m.topic === topic);
  }

  clear(): void {
    this.received.length = 0;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true).catch(() => undefined);
  }
}

/**
 * mqtt:// with TCP_NODELAY: MQTT.js's own TCP transport leaves Nagle's algorithm on, which adds
 * ~40 ms to a request written while an ACK is outstanding. Other schemes go through mqtt.connect.
 */
function plainTcp(url: string, options: IClientOptions): MqttClient | undefined {
  const parsed = new URL(url);
  if (parsed.protocol !== 'mqtt:') return undefined;
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = parsed.port ? Number(parsed.port) : 1883;
  return new MqttClient(() => netConnect({ host, port, noDelay: true }), { ...options, host, port, protocol: 'mqtt' });
}
