import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

export interface TopicTraffic {
  /** The topic below the robot's base (state, state/host, events, ...). */
  leaf: string;
  messages: number;
  /** Topic plus payload bytes, as the broker delivered them. */
  bytes: number;
}

export interface TrafficReport {
  seconds: number;
  messages: number;
  bytes: number;
  topics: TopicTraffic[];
}

/**
 * Counts what the broker delivers on <b>/# for one robot: topic and payload bytes per message
 * (the MQTT framing, a few bytes a message, is left out). What a dashboard subscribed to the
 * robot has to take in.
 */
export class TrafficMeter {
  private readonly seen: Array<{ leaf: string; bytes: number; at: number }> = [];

  private constructor(
    private readonly client: MqttClient,
    base: string,
  ) {
    client.on('message', (topic, payload, packet) => {
      // Retained copies delivered on subscribing are the broker's memory, not the robot's traffic;
      // live messages reach an existing subscriber with retain 0 (no retain-as-published asked).
      if (packet.retain) return;
      const bytes = Buffer.byteLength(topic) + payload.length;
      this.seen.push({ leaf: topic.slice(base.length + 1), bytes, at: Date.now() });
    });
  }

  static async start(url: string, base: string, options: IClientOptions = {}): Promise<TrafficMeter> {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, ...options });
    const meter = new TrafficMeter(client, base);
    await client.subscribeAsync(`${base}/#`, { qos: 1 });
    return meter;
  }

  /** Every message from `from` (ms since epoch) to `to`, per topic, busiest first. */
  report(from: number, to = Date.now()): TrafficReport {
    const window = this.seen.filter((m) => m.at >= from && m.at < to);
    const byLeaf = new Map<string, TopicTraffic>();
    for (const m of window) {
      const t = byLeaf.get(m.leaf) ?? byLeaf.set(m.leaf, { leaf: m.leaf, messages: 0, bytes: 0 }).get(m.leaf)!;
      t.messages += 1;
      t.bytes += m.bytes;
    }
    return {
      seconds: (to - from) / 1000,
      messages: window.length,
      bytes: window.reduce((n, m) => n + m.bytes, 0),
      topics: [...byLeaf.values()].sort((a, b) => b.bytes - a.bytes),
    };
  }

  /** How many messages came on one topic so far. */
  messagesOn(leaf: string): number {
    return this.seen.filter((m) => m.leaf === leaf).length;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** A report as lines: bytes a minute per topic, scaled to the minute of the configuration measured. */
export function formatTraffic(report: TrafficReport, secondsPerMinute = 60): string[] {
  const perMinute = (bytes: number) => (bytes / report.seconds) * secondsPerMinute;
  const line = (name: string, messages: number, bytes: number) =>
    `  ${name.padEnd(24)} ${String(messages).padStart(5)} msgs  ${perMinute(bytes).toFixed(0).padStart(8)} B/min`;
  return [...report.topics.map((t) => line(t.leaf, t.messages, t.bytes)), line('total', report.messages, report.bytes)];
}
