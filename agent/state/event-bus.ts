import { EventEmitter } from 'node:events';
import type { BusEvent, EventFields, EventType } from './events.js';

export type { AgentEvents, BusEvent, EventFields, EventType } from './events.js';

/**
 * What goes out on <b>/events: a dotted type, a timestamp, and the event's own fields. The wire
 * form, as a dashboard reads it (any type, fields unknown); on the bus, events are typed (BusEvent).
 */
export interface AgentEvent {
  type: string;
  ts: string;
  /** The request that caused it, when a command did. */
  id?: string;
  [field: string]: unknown;
}

/**
 * Events raised anywhere in the agent, delivered to whoever publishes them. A listener that
 * throws is isolated: the others still get the event and the raiser never sees the error.
 */
export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor(private readonly onListenerError: (err: unknown, event: BusEvent) => void = () => undefined) {
    this.emitter.setMaxListeners(50);
  }

  /** Raises an event of a type agent/state/events.ts declares, with the fields it declares for it. */
  emit<K extends EventType>(type: K, fields: EventFields<K>): BusEvent {
    // The fields were checked against AgentEvents[K] by the compiler; the envelope makes it a BusEvent.
    const event = { ...fields, type, ts: new Date().toISOString() } as BusEvent;
    for (const listener of this.emitter.listeners('event') as Array<(e: BusEvent) => void>) {
      try {
        listener(event);
      } catch (err) {
        this.onListenerError(err, event);
      }
    }
    return event;
  }

  /** Every event, typed: a listener narrows by `type` and reads its fields without casts. */
  subscribe(listener: (event: BusEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }
}
