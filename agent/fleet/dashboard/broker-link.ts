import type { MqttClient } from 'mqtt';
import { Backoff } from '../../core/backoff.js';

export interface BrokerLinkOptions {
  /** Said to the operator (stderr) when the broker goes and comes back. */
  log(line: string): void;
  /** Subscribes again after a reconnect: the broker forgot a clean session's subscriptions. */
  resubscribe(): Promise<void>;
  initialMs?: number;
  maxMs?: number;
}

/**
 * Keeps the dashboard's one broker connection: after a loss it reconnects with backoff and
 * jitter (1 s doubling to 30 s) rather than MQTT.js's fixed period, and subscribes again (the
 * broker then sends every retained message anew, so the fleet model catches up). Returns stop.
 */
export function keepConnected(client: MqttClient, o: BrokerLinkOptions): () => void {
  const backoff = new Backoff({ initialMs: o.initialMs ?? 1000, maxMs: o.maxMs ?? 30_000 });
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let lost = false;
  // MQTT.js must not reconnect on its own: two loops would race.
  client.options.reconnectPeriod = 0;
  const onClose = () => {
    if (stopped || timer) return;
    const delay = backoff.next();
    if (!lost)
      o.log(`lost the fleet broker; reconnecting (first try in ${(delay / 1000).toFixed(1)} s, then less often)`);
    lost = true;
    timer = setTimeout(() => {
      timer = undefined;
      if (!stopped) client.reconnect();
    }, delay);
    timer.unref?.();
  };
  const onConnect = () => {
    backoff.reset();
    if (!lost) return;
    lost = false;
    o.log('the fleet broker is back; subscribing again');
    // A subscription refused on a fresh connection means the connection is going again:
    // its close brings the next attempt, which subscribes again.
    o.resubscribe().catch((err: unknown) => o.log(`subscribing again failed (${(err as Error).message})`));
  };
  // A refused or dropped connection is reported by close; the error itself needs no handler but this.
  const onError = () => undefined;
  client.on('close', onClose);
  client.on('connect', onConnect);
  client.on('error', onError);
  return () => {
    stopped = true;
    clearTimeout(timer);
    client.off('close', onClose);
    client.off('connect', onConnect);
    client.off('error', onError);
  };
}
