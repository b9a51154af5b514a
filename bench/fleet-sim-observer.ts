import mqtt, { type MqttClient } from 'mqtt';
import type { StateSummary } from '../agent/mqtt/summary.js';

export interface ObservedRobot {
  summary?: StateSummary;
  /** The summary as it arrived, for a contract check. */
  raw?: string;
  availability?: string;
}

/**
 * A dashboard that connects to the fleet broker: subscribes (QoS 1, as robot-fleet does) to
 * every robot's summary and availability and keeps the last of each. What a new subscriber
 * receives is what the retained topics hold.
 */
export class FleetObserver {
  readonly robots = new Map<string, ObservedRobot>();
  /** Messages that were not a summary's JSON: none are expected. */
  unreadable = 0;
  private completeCount = 0;
  private readonly listeners = new Set<(robot: string, kind: string, at: number) => void>();

  private constructor(
    private readonly client: MqttClient,
    base: string,
  ) {
    client.on('message', (topic, payload) => {
      const at = Date.now();
      const [, robot, kind] = topic.slice(base.length).split('/');
      if (!robot || !kind) return;
      const seen = this.robots.get(robot) ?? this.robots.set(robot, {}).get(robot)!;
      const wasComplete = seen.summary !== undefined && seen.availability !== undefined;
      if (kind === 'availability') seen.availability = payload.toString();
      else if (kind === 'state') {
        seen.raw = payload.toString();
        try {
          seen.summary = JSON.parse(seen.raw) as StateSummary;
        } catch {
          this.unreadable += 1;
        }
      }
      if (!wasComplete && seen.summary !== undefined && seen.availability !== undefined) this.completeCount += 1;
      for (const listener of this.listeners) listener(robot, kind, at);
    });
  }

  /** Connects and subscribes; resolves once the broker granted the subscription. */
  static async connect(url: string, base: string, qos: 0 | 1 = 1): Promise<FleetObserver> {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, clean: true });
    const observer = new FleetObserver(client, base);
    await client.subscribeAsync([`${base}/+/state`, `${base}/+/availability`], { qos });
    return observer;
  }

  /** Robots with both a summary and an availability; counted as they arrive (checked on every message). */
  get complete(): number {
    return this.completeCount;
  }

  /** Resolves when n robots are complete; rejects after ms with how many were. */
  waitForComplete(n: number, ms: number): Promise<number> {
    return this.waitFor(
      () => this.complete >= n,
      ms,
      () => `${this.complete} of ${n} robots complete`,
    );
  }

  /** Resolves with the time (ms since epoch) a message made check true; rejects after ms. */
  waitFor(check: () => boolean, ms: number, what: () => string): Promise<number> {
    if (check()) return Promise.resolve(Date.now());
    return new Promise((resolve, reject) => {
      const listener = (_robot: string, _kind: string, at: number) => {
        if (!check()) return;
        done();
        resolve(at);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms: ${what()}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      this.listeners.add(listener);
    });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
