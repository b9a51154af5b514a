import { EventEmitter } from 'node:events';

/** What goes out on <b>/events: a dotted type, a timestamp, and the event's own fields. */
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

  constructor(private readonly onListenerError: (err: unknown, event: AgentEvent) => void = () => undefined) {
    this.emitter.setMaxListeners(50);
  }

  emit(type: string, fields: Record<string, unknown> = {}): AgentEvent {
    const event: AgentEvent = { ...fields, type, ts: new Date().toISOString() };
    for (const listener of this.emitter.listeners('event') as Array<(e: AgentEvent) => void>) {
      try {
        listener(event);
      } catch (err) {
        this.onListenerError(err, event);
      }
    }
    return event;
  }

  subscribe(listener: (event: AgentEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }
}
