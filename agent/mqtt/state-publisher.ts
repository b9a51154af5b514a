import type { Logger } from '../core/logger.js';
import type { StateStore } from '../state/state-store.js';
import type { AgentState } from '../state/types.js';
import type { MqttLink } from './mqtt-link.js';
import type { Topics } from './topics.js';

export const STATE_SIZE_LIMIT = 64 * 1024;

export interface StatePublisherOptions {
  store: StateStore;
  link: MqttLink;
  topics: Topics;
  heartbeatMs: number;
  /** How long a burst of changes is gathered into one publish; well under the 1 s promise. */
  coalesceMs?: number;
  logger: Logger;
}

/**
 * Keeps the retained <b>/state true: republished shortly after any change (a burst coalesced),
 * after every (re)connect (a restarted broker has lost it) and on a heartbeat.
 */
export class StatePublisher {
  readonly name = 'state-publisher';
  private pending: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private unsubscribers: Array<() => void> = [];
  private warnedTooLarge = false;

  constructor(private readonly options: StatePublisherOptions) {}

  async start(): Promise<void> {
    const { store, link } = this.options;
    this.unsubscribers = [store.onChange(() => this.schedule()), link.onConnect(() => this.publishNow())];
    this.heartbeat = setInterval(() => this.publishNow(), this.options.heartbeatMs);
    if (link.connected) this.publishNow();
  }

  async stop(): Promise<void> {
    for (const off of this.unsubscribers) off();
    this.unsubscribers = [];
    clearTimeout(this.pending);
    clearInterval(this.heartbeat);
    this.pending = undefined;
  }

  /** The state as published: the store's plus the publish time. */
  snapshot(): AgentState {
    return { ...this.options.store.get(), ts: new Date().toISOString() };
  }

  publishNow(): AgentState {
    clearTimeout(this.pending);
    this.pending = undefined;
    const state = this.snapshot();
    const payload = JSON.stringify(state);
    if (payload.length > STATE_SIZE_LIMIT && !this.warnedTooLarge) {
      this.warnedTooLarge = true;
      this.options.logger.warn('state exceeds its size budget', { bytes: payload.length, limit: STATE_SIZE_LIMIT });
    }
    // Not queued while offline: the next connect publishes the then-current state anyway.
    this.options.link.send({ topic: this.options.topics.state, payload, qos: 1, retain: true }, 'drop');
    return state;
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => this.publishNow(), this.options.coalesceMs ?? 250);
  }
}
