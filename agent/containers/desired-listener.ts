import type { Logger } from '../core/logger.js';
import type { MqttLink } from '../mqtt/mqtt-link.js';

/**
 * Hands <b>/desired messages to whoever applies them, one at a time and in arrival order,
 * behind a boundary: a message that breaks the applier is logged, never fatal.
 *
 * The desired state is "the last one wins": while one message is being applied only the newest
 * that arrived meanwhile waits (the ones it replaces are skipped). A publisher flooding the
 * topic therefore holds at most two payloads in memory, not a chain of every one it sent.
 */
export class DesiredListener {
  readonly name = 'desired';
  private unsubscribe: (() => void) | undefined;
  private pending: Buffer | undefined;
  private running: Promise<void> | undefined;
  private skipped = 0;

  constructor(
    private readonly o: { link: MqttLink; topic: string; apply: (payload: Buffer) => Promise<void>; logger: Logger },
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = this.o.link.onMessage((topic, payload) => {
      if (topic !== this.o.topic) return;
      if (this.pending !== undefined) this.skipped += 1;
      this.pending = payload;
      this.running ??= this.drain();
    });
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending !== undefined) {
      const payload = this.pending;
      this.pending = undefined;
      if (this.skipped > 0) {
        this.o.logger.info('desired state superseded before it was applied', { skipped: this.skipped });
        this.skipped = 0;
      }
      await this.o
        .apply(payload)
        .catch((err: unknown) => this.o.logger.error('desired state handler failed', { error: err as Error }));
    }
    this.running = undefined;
  }
}
