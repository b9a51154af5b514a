import type { Logger } from '../core/logger.js';
import type { MqttLink } from '../mqtt/mqtt-link.js';

/**
 * Hands <b>/desired messages to whoever applies them, one at a time and in arrival order,
 * behind a boundary: a message that breaks the applier is logged, never fatal.
 */
export class DesiredListener {
  readonly name = 'desired';
  private unsubscribe: (() => void) | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly o: { link: MqttLink; topic: string; apply: (payload: Buffer) => Promise<void>; logger: Logger }) {}

  async start(): Promise<void> {
    this.unsubscribe = this.o.link.onMessage((topic, payload) => {
      if (topic !== this.o.topic) return;
      this.chain = this.chain.then(() => this.o.apply(payload)).catch((err: unknown) => this.o.logger.error('desired state handler failed', { error: err as Error }));
    });
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.chain;
  }
}
