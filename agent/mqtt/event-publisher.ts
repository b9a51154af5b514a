import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';
import type { MqttLink } from './mqtt-link.js';
import type { Topics } from './topics.js';

/**
 * Sends every bus event to <b>/events. While disconnected they wait in the link's bounded queue;
 * how many are waiting and how many were dropped is part of the state.
 */
export class EventPublisher {
  readonly name = 'event-publisher';
  private unsubscribers: Array<() => void> = [];

  constructor(private readonly options: { bus: EventBus; link: MqttLink; topics: Topics; store: StateStore }) {}

  async start(): Promise<void> {
    const { bus, link, topics } = this.options;
    this.unsubscribers = [
      bus.subscribe((event) => {
        link.send({ topic: topics.events, payload: JSON.stringify(event), qos: 1, retain: false }, 'queue');
        this.recordLinkStats();
      }),
      link.onConnect(() => this.recordLinkStats()),
      link.onDisconnect(() => this.recordLinkStats()),
    ];
    this.recordLinkStats();
  }

  async stop(): Promise<void> {
    for (const off of this.unsubscribers) off();
    this.unsubscribers = [];
  }

  private recordLinkStats(): void {
    const stats = this.options.link.stats;
    this.options.store.update('agent', (agent) => ({
      ...agent,
      mqtt: {
        ...agent.mqtt,
        connected: stats.connected,
        eventsBuffered: stats.queued,
        eventsDropped: stats.dropped,
        reconnects: stats.reconnects,
      },
    }));
  }
}
