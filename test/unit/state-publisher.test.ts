import assert from 'node:assert/strict';
import { silentLogger } from '../../agent/core/logger.js';
import type { MqttLink } from '../../agent/mqtt/mqtt-link.js';
import { STATE_SECTIONS, StatePublisher } from '../../agent/mqtt/state-publisher.js';
import { buildTopics } from '../../agent/mqtt/topics.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { StateSummary } from '../../agent/mqtt/summary.js';
import { Contract } from '../helpers/contract.js';
import { waitUntil } from '../helpers/wait.js';
import { x3State } from '../helpers/x3-state.js';

/** A link that records what would go to the broker, connected at will. */
class FakeLink {
  connected = true;
  readonly sent: Array<{ topic: string; payload: string; retain: boolean }> = [];
  private readonly connectListeners: Array<() => void> = [];
  send(message: { topic: string; payload: string | Buffer; retain?: boolean }): void {
    this.sent.push({ topic: message.topic, payload: String(message.payload), retain: message.retain === true });
  }
  onConnect(listener: () => void): () => void {
    this.connectListeners.push(listener);
    return () => undefined;
  }
  reconnect(): void {
    this.connected = true;
    for (const listener of this.connectListeners) listener();
  }
  leaves(base: string): string[] {
    return this.sent.map((m) => m.topic.slice(base.length + 1));
  }
}

describe('state publisher: the summary and the sections, each only when it changed', () => {
  const topics = buildTopics('fleet', 'rosmaster-07');
  const base = 'fleet/rosmaster-07';
  let publisher: StatePublisher | undefined;

  afterEach(async () => {
    await publisher?.stop();
    publisher = undefined;
  });

  function start(heartbeatMs = 3_600_000): { link: FakeLink; store: StateStore } {
    const link = new FakeLink();
    const store = new StateStore(x3State());
    const fake = link as unknown as MqttLink;
    publisher = new StatePublisher({ store, link: fake, topics, heartbeatMs, coalesceMs: 10, logger: silentLogger });
    return { link, store };
  }

  it('sends every section and the summary, retained, on connect; each payload conforms to its schema', async () => {
    const { link, store } = start();
    await publisher!.start();
    assert.deepEqual(link.leaves(base), [...STATE_SECTIONS.map((s) => `state/${s}`), 'state']);
    assert.ok(link.sent.every((m) => m.retain));
    const contract = new Contract();
    for (const m of link.sent) {
      const leaf = m.topic.slice(base.length + 1);
      if (leaf === 'state') contract.assert('state-summary.json', JSON.parse(m.payload));
      else contract.assert(`state.json#/properties/${leaf.slice('state/'.length)}`, JSON.parse(m.payload));
    }
    const host = link.sent.find((m) => m.topic === `${base}/state/host`)!;
    assert.deepEqual(JSON.parse(host.payload), store.get().host);
  });

  it('a change sends only its section, and the summary only when the summary changed', async () => {
    const { link, store } = start();
    await publisher!.start();
    link.sent.length = 0;
    store.update('host', (h) => ({ ...h, hostname: 'renamed' }));
    await waitUntil(() => link.sent.length > 0, 2000, 'the host section');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(link.leaves(base), ['state/host']);

    link.sent.length = 0;
    store.update('devices', (d) => ({ ...d, camera: { present: false, depth: null, rgb: null } }));
    await waitUntil(() => link.sent.length >= 2, 2000, 'devices and the summary');
    assert.deepEqual(link.leaves(base), ['state/devices', 'state']);
    const summary = JSON.parse(link.sent[1]!.payload) as StateSummary;
    assert.deepEqual([summary.status, summary.why], ['degraded', ['camera absent']]);
    assert.deepEqual(summary.devices.camera, { present: false });
    assert.equal(summary.changed, summary.seen, 'changed is when it changed');

    // The same bytes again: nothing goes out.
    link.sent.length = 0;
    store.update('host', (h) => ({ ...h, hostname: 'renamed-again' }));
    store.update('host', (h) => ({ ...h, hostname: 'renamed' }));
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(link.leaves(base), []);
  });

  it('the heartbeat sends the summary alone, with a new seen and the same changed', async () => {
    const { link } = start(100);
    await publisher!.start();
    const first = JSON.parse(link.sent.at(-1)!.payload) as StateSummary;
    link.sent.length = 0;
    await waitUntil(() => link.sent.length >= 2, 3000, 'two heartbeats');
    assert.deepEqual(link.leaves(base).slice(0, 2), ['state', 'state']);
    const beat = JSON.parse(link.sent[1]!.payload) as StateSummary;
    assert.equal(beat.changed, first.changed);
    assert.ok(beat.seen > first.seen);
  });

  it('offline nothing is sent; the next connect sends everything again; the state command returns all', async () => {
    const { link, store } = start();
    await publisher!.start();
    link.sent.length = 0;
    link.connected = false;
    store.update('update', () => ({ status: 'pulling', container: 'ros', to: 'yahboomtechnology/ros-foxy:3.4.0' }));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(link.sent.length, 0);
    link.reconnect();
    assert.deepEqual(link.leaves(base), [...STATE_SECTIONS.map((s) => `state/${s}`), 'state']);
    assert.equal((JSON.parse(link.sent.at(-1)!.payload) as StateSummary).status, 'updating');

    link.sent.length = 0;
    // A later millisecond: seen in the same one would be the same bytes, rightly not resent.
    await new Promise((r) => setTimeout(r, 5));
    const all = publisher!.publishNow();
    assert.deepEqual(Object.keys(all).sort(), [...STATE_SECTIONS, 'robot', 'ts'].sort());
    new Contract().assert('state.json', all);
    assert.deepEqual(link.leaves(base), ['state'], 'a request refreshes seen, sections are already current');
  });
});
