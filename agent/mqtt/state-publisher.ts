import type { Logger } from '../core/logger.js';
import type { StateStore } from '../state/state-store.js';
import { summarise } from './summary.js';
import type { AgentState, StateSection } from '../state/types.js';
import type { MqttLink } from './mqtt-link.js';
import type { Topics } from './topics.js';

/** A section over this is published but logged: it would make every dashboard that reads it slow. */
export const STATE_SIZE_LIMIT = 64 * 1024;

/** Every section, each on <b>/state/<section>, in the order they go out. */
export const STATE_SECTIONS: readonly StateSection[] = [
  'agent',
  'host',
  'docker',
  'devices',
  'images',
  'containers',
  'desired',
  'update',
  'snapshots',
];

export interface StatePublisherOptions {
  store: StateStore;
  link: MqttLink;
  topics: Topics;
  /** How often the summary says the robot is still here (its `seen`) when nothing changes. */
  heartbeatMs: number;
  /** How long a burst of changes is gathered into one publish; well under the 1 s promise. */
  coalesceMs?: number;
  logger: Logger;
  now?: () => Date;
}

type Why = 'change' | 'heartbeat' | 'connect' | 'request';

/**
 * Keeps the retained state true at a small cost per robot: <b>/state is the summary (under
 * 1 KiB), each section in full is on <b>/state/<section>, sent only when its bytes changed.
 * Shortly after a change (a burst coalesced) the changed sections go out, then the summary if
 * it changed; on the heartbeat only the summary, for its `seen`; after every (re)connect all of
 * them (a restarted broker has lost them).
 */
export class StatePublisher {
  readonly name = 'state-publisher';
  private pending: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private unsubscribers: Array<() => void> = [];
  private readonly warnedTooLarge = new Set<string>();
  /** The payload last sent on each topic, to send a section only when its bytes changed. */
  private readonly sent = new Map<string, string>();
  /** The summary without its times, as last sent: a change of it is what `changed` dates. */
  private lastContent: string | undefined;
  private changed: string;

  constructor(private readonly options: StatePublisherOptions) {
    this.changed = this.now();
  }

  async start(): Promise<void> {
    const { store, link } = this.options;
    this.unsubscribers = [store.onChange(() => this.schedule()), link.onConnect(() => this.publish('connect'))];
    this.heartbeat = setInterval(() => this.publish('heartbeat'), this.options.heartbeatMs);
    if (link.connected) this.publish('connect');
  }

  async stop(): Promise<void> {
    for (const off of this.unsubscribers) off();
    this.unsubscribers = [];
    clearTimeout(this.pending);
    clearInterval(this.heartbeat);
    this.pending = undefined;
  }

  /** The whole state as the `state` command returns it: the store's plus the time. */
  snapshot(): AgentState {
    return { ...this.options.store.get(), ts: this.now() };
  }

  /** For the `state` command: brings the retained topics up to date and returns everything. */
  publishNow(): AgentState {
    this.publish('request');
    return this.snapshot();
  }

  private publish(why: Why): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    const { link, topics, store } = this.options;
    const state = store.get();
    const now = this.now();
    // Dated when it happens, connected or not.
    const content = JSON.stringify(summarise(state, { changed: '', seen: '' }));
    const contentChanged = content !== this.lastContent;
    if (contentChanged && this.lastContent !== undefined) this.changed = now;
    this.lastContent = content;
    // Offline, nothing is sent and nothing is remembered as sent: the next connect sends all.
    if (!link.connected) {
      this.sent.clear();
      return;
    }
    if (why === 'connect') this.sent.clear();
    // Sections first: a dashboard that sees the summary change finds the sections already new.
    for (const section of STATE_SECTIONS) this.send(topics.stateSection(section), JSON.stringify(state[section]));
    const summaryTopicStale = !this.sent.has(topics.state);
    if (contentChanged || summaryTopicStale || why !== 'change') {
      this.send(topics.state, JSON.stringify(summarise(state, { changed: this.changed, seen: now })));
    }
  }

  private send(topic: string, payload: string): void {
    if (this.sent.get(topic) === payload) return;
    this.sent.set(topic, payload);
    if (payload.length > STATE_SIZE_LIMIT && !this.warnedTooLarge.has(topic)) {
      this.warnedTooLarge.add(topic);
      const fields = { topic, bytes: payload.length, limit: STATE_SIZE_LIMIT };
      this.options.logger.warn('a state section exceeds its size budget', fields);
    }
    this.options.link.send({ topic, payload, qos: 1, retain: true }, 'drop');
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => this.publish('change'), this.options.coalesceMs ?? 250);
  }

  private now(): string {
    return (this.options.now?.() ?? new Date()).toISOString();
  }
}
