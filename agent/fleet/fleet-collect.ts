import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import type { StateSummary } from '../mqtt/summary.js';
import type { RobotView } from './fleet-select.js';

/** What `robot-fleet list` got from the broker, and whether the broker held some of it back. */
export interface Collected {
  robots: RobotView[];
  /**
   * Retained messages the broker did not send with the first burst but did when asked topic by
   * topic: the broker dropped them past its per-client queue (mosquitto max_queued_messages).
   */
  recovered: number;
  /**
   * The drop began before the last robot's summary: robots may be missing from the list and
   * cannot be asked for (their names never arrived).
   */
  cut: boolean;
  /** The end of the burst was seen by our marker (false: by a quiet stream, e.g. the marker was refused). */
  marked: boolean;
}

export interface CollectOptions {
  base: string;
  /** The whole collection ends by then, whatever arrived. */
  timeoutMs: number;
  /** Topics asked for at once when asking again; below any sane queue limit. */
  batch?: number;
  /** The stream is taken as finished after this long without a message when no marker comes back. */
  quietMs?: number;
}

/** A marker is published again this often until one comes back (the one before may have been dropped). */
const MARKER_EVERY_MS = 250;

/**
 * Reads every robot's retained summary and availability (pure MQTT: the client is passed in).
 *
 * A broker sends every retained message of a subscription at once, into a per-client queue;
 * past its limit it drops the rest without a word (MQTT has no signal for it). So:
 * - The end of the burst is a marker: we subscribe to a topic of our own in the same request
 *   and publish to it (QoS 1) after the broker acknowledged the subscription; the broker queues the
 *   retained messages first, so the marker arrives after all it did not drop. The marker is
 *   published again until one arrives (a full queue drops it too).
 * - Summaries come first (the first filter), then availabilities. A robot with one but not the
 *   other is asked for the missing topic by name, a batch at a time; any answer proves a drop.
 * - When no availability at all came in the burst yet some are retained, the drop began among
 *   the summaries: robots past it are missing, and the caller says what to set on the broker.
 */
export async function collectFleet(client: MqttClient, o: CollectOptions): Promise<Collected> {
  const deadline = Date.now() + o.timeoutMs;
  const robots = new Map<string, RobotView>();
  const prefix = `${o.base}/`;
  const markerTopic = `${o.base}/robot-fleet-list-${randomUUID().slice(0, 8)}/request/list-marker`;
  const view = (robot: string) => {
    let r = robots.get(robot);
    if (!r) robots.set(robot, (r = { robot, online: null, state: null }));
    return r;
  };
  let markers = 0;
  let lastMessage = Date.now();
  let counting: { states: number; availabilities: number } = { states: 0, availabilities: 0 };
  let recovered = 0;
  let recheck: Set<string> | null = null;

  const onMessage = (topic: string, payload: Buffer) => {
    lastMessage = Date.now();
    if (topic === markerTopic) {
      markers = Math.max(markers, Number(payload.toString()) || 0);
      return;
    }
    if (!topic.startsWith(prefix)) return;
    const parts = topic.slice(prefix.length).split('/');
    if (parts.length !== 2 || !parts[0]) return;
    const [robot, kind] = parts as [string, string];
    if (recheck?.delete(topic)) recovered += 1;
    if (kind === 'availability') {
      counting.availabilities += 1;
      view(robot).online = payload.toString() === 'online';
    } else if (kind === 'state') {
      counting.states += 1;
      const r = view(robot);
      try {
        r.state = JSON.parse(payload.toString()) as StateSummary;
      } catch {
        // A robot that sent something unreadable still shows, without state.
      }
    }
  };
  client.on('message', onMessage);

  let sent = 0;
  let marked = true;
  /** Until our marker (or, when markers do not come back, a quiet stream) says the broker sent all it will. */
  const endOfBurst = async () => {
    const mine = (sent += 1);
    const start = Date.now();
    let lastSent = 0;
    while (markers < mine && Date.now() < deadline) {
      if (Date.now() - lastSent >= MARKER_EVERY_MS) {
        lastSent = Date.now();
        // QoS 1 as the retained messages: the broker queues it behind them. A QoS 0 message skips that
        // queue and overtook the availabilities (issue 14.4). Not awaited: a marker the ACL refuses is
        // acknowledged all the same (MQTT 3.1.1) but never comes back; the quiet stream or the
        // deadline ends the wait, and one that cannot be sent is sent again.
        client.publish(markerTopic, String(mine), { qos: 1 }, () => undefined);
      }
      // Once markers did not come back, each batch ends on a shorter quiet: they are small.
      const quiet = marked ? (o.quietMs ?? 2000) : 500;
      if (Date.now() - Math.max(lastMessage, start) >= quiet) {
        marked = false;
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  try {
    await client.subscribeAsync([`${o.base}/+/state`, `${o.base}/+/availability`, markerTopic], { qos: 1 });
    await endOfBurst();
    const burst = counting;
    counting = { states: 0, availabilities: 0 };
    const missing = [...robots.values()].flatMap((r) =>
      r.state === null ? [`${prefix}${r.robot}/state`] : r.online === null ? [`${prefix}${r.robot}/availability`] : [],
    );
    recheck = new Set(missing);
    const batch = o.batch ?? 50;
    for (let at = 0; at < missing.length && Date.now() < deadline; at += batch) {
      const topics = missing.slice(at, at + batch);
      await client.subscribeAsync(topics, { qos: 1 });
      await endOfBurst();
      // Topic by topic: these subscriptions would otherwise stay until we disconnect.
      await client.unsubscribeAsync(topics);
    }
    const cut = recovered > 0 && burst.availabilities === 0;
    return { robots: [...robots.values()], recovered, cut, marked };
  } finally {
    client.off('message', onMessage);
  }
}
