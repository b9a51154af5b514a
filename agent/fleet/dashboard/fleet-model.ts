import { EventEmitter } from 'node:events';
import type { MqttClient } from 'mqtt';
import type { AgentEvent } from '../../state/event-bus.js';
import type { StateSummary } from '../../mqtt/summary.js';
import { collectFleet, type Collected } from '../fleet-collect.js';
import type { RobotView } from '../fleet-select.js';

export interface FleetModelOptions {
  base: string;
  /** Robots held; past it new ones are counted, not kept (a broker full of junk must not fill our memory). */
  maxRobots?: number;
  /** Robots whose sections are held at once (one per open robot page). */
  maxWatched?: number;
  /** Events kept per watched robot, for a page that opens it. */
  eventsKept?: number;
  /** The first collection ends by then. */
  timeoutMs: number;
}

const SUMMARY_MAX_BYTES = 16 * 1024;
const SECTION_MAX_BYTES = 2 * 1024 * 1024;
const EVENT_MAX_BYTES = 64 * 1024;
const ROBOT_NAME = /^[^/+#\s]{1,128}$/;

interface Watched {
  refs: number;
  sections: Record<string, unknown>;
  events: AgentEvent[];
}

/**
 * The fleet as the broker holds it, in memory and bounded: every robot's summary and
 * availability, the sections of the robots someone has open, the recent events of those.
 * Emits 'robot' (a view that changed), 'gone' (a robot whose retained topics were cleared),
 * 'section' (robot, name, value) and 'event' (robot, event) for every robot's event.
 */
export class FleetModel extends EventEmitter {
  readonly robots = new Map<string, RobotView>();
  /** Robots left out past maxRobots. */
  overflow = 0;
  private readonly watched = new Map<string, Watched>();
  private readonly prefix: string;
  private collected: Collected | null = null;

  constructor(
    private readonly client: MqttClient,
    private readonly o: FleetModelOptions,
  ) {
    super();
    this.prefix = `${o.base}/`;
    this.onMessage = this.onMessage.bind(this);
  }

  /**
   * Subscribes and takes in every retained summary and availability. The collection is the one
   * `robot-fleet list` uses: it notices a broker that dropped retained messages past its queue and
   * asks for them again. The subscriptions stay, so every later change comes in too.
   */
  async start(): Promise<Collected> {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- bound in the constructor
    this.client.on('message', this.onMessage);
    await this.client.subscribeAsync(`${this.o.base}/+/events`, { qos: 1 });
    this.collected = await collectFleet(this.client, { base: this.o.base, timeoutMs: this.o.timeoutMs });
    return this.collected;
  }

  /** The subscriptions again, after a reconnect (a clean session lost them). */
  async resubscribe(): Promise<void> {
    const topics = [
      `${this.o.base}/+/events`,
      `${this.o.base}/+/state`,
      `${this.o.base}/+/availability`,
      ...[...this.watched.keys()].map((robot) => `${this.prefix}${robot}/state/+`),
    ];
    await this.client.subscribeAsync(topics, { qos: 1 });
  }

  stop(): void {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- bound in the constructor
    this.client.off('message', this.onMessage);
  }

  /** Holds a robot's sections (and its events from now) until unwatch; the current ones are returned. */
  async watch(robot: string): Promise<Watched | null> {
    if (!ROBOT_NAME.test(robot)) return null;
    let w = this.watched.get(robot);
    if (w) {
      w.refs += 1;
      return w;
    }
    if (this.watched.size >= (this.o.maxWatched ?? 64)) return null;
    w = { refs: 1, sections: {}, events: [] };
    this.watched.set(robot, w);
    try {
      await this.client.subscribeAsync(`${this.prefix}${robot}/state/+`, { qos: 1 });
    } catch (err) {
      // Not held: the slot is free again for the next try.
      if (this.watched.get(robot) === w) this.watched.delete(robot);
      throw err;
    }
    return w;
  }

  async unwatch(robot: string): Promise<void> {
    const w = this.watched.get(robot);
    if (!w) return;
    w.refs -= 1;
    if (w.refs > 0) return;
    this.watched.delete(robot);
    await this.client.unsubscribeAsync(`${this.prefix}${robot}/state/+`);
  }

  watchedSections(robot: string): Watched | undefined {
    return this.watched.get(robot);
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (!topic.startsWith(this.prefix)) return;
    const parts = topic.slice(this.prefix.length).split('/');
    const robot = parts[0] ?? '';
    if (!ROBOT_NAME.test(robot)) return;
    const kind = parts.slice(1).join('/');
    if (kind === 'availability')
      this.update(robot, (r) => {
        r.online = payload.length === 0 ? null : payload.toString() === 'online';
      });
    else if (kind === 'state')
      this.update(robot, (r) => {
        r.state = payload.length === 0 || payload.length > SUMMARY_MAX_BYTES ? null : parse<StateSummary>(payload);
      });
    else if (kind === 'events') this.event(robot, payload);
    else if (parts.length === 3 && parts[1] === 'state') this.section(robot, parts[2]!, payload);
  }

  private update(robot: string, change: (r: RobotView) => void): void {
    let r = this.robots.get(robot);
    if (!r) {
      if (this.robots.size >= (this.o.maxRobots ?? 20_000)) {
        this.overflow += 1;
        return;
      }
      r = { robot, online: null, state: null };
      this.robots.set(robot, r);
    }
    change(r);
    if (r.online === null && r.state === null) {
      // Both retained topics cleared: the robot left the fleet.
      this.robots.delete(robot);
      this.emit('gone', robot);
    } else this.emit('robot', r);
  }

  private section(robot: string, name: string, payload: Buffer): void {
    const w = this.watched.get(robot);
    if (!w || payload.length > SECTION_MAX_BYTES || !/^[a-z]{1,32}$/.test(name)) return;
    const value = payload.length === 0 ? null : parse<unknown>(payload);
    w.sections[name] = value;
    this.emit('section', robot, name, value);
  }

  private event(robot: string, payload: Buffer): void {
    if (payload.length > EVENT_MAX_BYTES) return;
    const event = parse<AgentEvent>(payload);
    if (!event || typeof event.type !== 'string') return;
    const w = this.watched.get(robot);
    if (w) {
      w.events.push(event);
      if (w.events.length > (this.o.eventsKept ?? 50)) w.events.shift();
    }
    this.emit('event', robot, event);
  }
}

function parse<T>(payload: Buffer): T | null {
  try {
    return JSON.parse(payload.toString('utf8')) as T;
  } catch {
    // Unreadable: shown without it rather than not at all.
    return null;
  }
}
