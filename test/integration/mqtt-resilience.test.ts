import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { STATE_SECTIONS } from '../../agent/mqtt/state-publisher.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir } from '../helpers/temp.js';
import { sleep, waitUntil } from '../helpers/wait.js';
import { startMosquitto, type MosquittoRig } from '../rig/mosquitto.js';
import { needRig } from '../setup.js';
import '../helpers/test-events.js';

/** A broker of its own per test, so it can be stopped and started without disturbing others. */
describe('MQTT link resilience', function () {
  this.timeout(30_000);
  let broker: MosquittoRig | undefined;
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;

  afterEach(async () => {
    await probe?.close();
    await subject?.stop();
    await broker?.stop();
    probe = undefined;
    subject = undefined;
    broker = undefined;
  });

  it('a broker down at startup is not fatal: the agent keeps observing and connects when it comes', async function () {
    needRig(this);
    broker = await startMosquitto(tempDir('rfa-mq-'));
    await broker.stop();
    subject = await startAgent({ mqtt: { url: broker.url } });
    await sleep(1500);
    const state = subject.agent.store.get();
    assert.equal(state.agent.mqtt.connected, false);
    assert.equal(state.agent.modules.mqtt?.status, 'running', 'the link is running, just not connected');
    assert.ok(state.host.metrics, 'metrics are observed while offline');
    await broker.start();
    probe = await MqttProbe.connect(broker.url, { protocolVersion: 5 });
    await probe.subscribe(`${subject.base}/#`);
    await probe.waitForTopic(`${subject.base}/availability`, 5000, (m) => m.text === 'online');
    await probe.waitForTopic(`${subject.base}/state`, 5000);
    assert.equal((await probe.request(subject.base, 'ping', { id: 'late' })).ok, true);
  });

  it('events raised while disconnected go out in order after reconnect; state and online are republished', async function () {
    needRig(this);
    broker = await startMosquitto(tempDir('rfa-mq-'));
    subject = await startAgent({ mqtt: { url: broker.url } });
    await waitUntil(() => subject!.agent.store.get().agent.mqtt.connected, 5000, 'connected');
    await broker.stop();
    await waitUntil(() => !subject!.agent.store.get().agent.mqtt.connected, 5000, 'disconnected');
    for (let n = 1; n <= 5; n += 1) subject.agent.bus.emit('test.offline', { n });
    assert.equal(subject.agent.store.get().agent.mqtt.eventsBuffered, 5);
    await broker.start();
    // Retained messages died with the broker (no persistence); a new subscriber must still see them.
    probe = await MqttProbe.connect(broker.url, { protocolVersion: 5 });
    await probe.subscribe(`${subject.base}/#`);
    await probe.waitForTopic(`${subject.base}/availability`, 5000, (m) => m.text === 'online');
    await probe.waitForTopic(`${subject.base}/state`, 5000);
    const late = await MqttProbe.connect(broker.url, { protocolVersion: 5 });
    await late.subscribe(`${subject.base}/state`, `${subject.base}/state/+`, `${subject.base}/availability`);
    assert.equal((await late.waitForTopic(`${subject.base}/state`, 3000)).retain, true);
    // Every section too, though none changed since they were last sent.
    for (const section of STATE_SECTIONS) {
      assert.equal((await late.waitForTopic(`${subject.base}/state/${section}`, 3000)).retain, true, section);
    }
    assert.equal((await late.waitForTopic(`${subject.base}/availability`, 3000)).text, 'online');
    await late.close();
    // The buffered events were sent before our probe subscribed; prove delivery with a probe
    // that was subscribed before the outage in the next test. Here: the buffer is empty again.
    await waitUntil(() => subject!.agent.store.get().agent.mqtt.eventsBuffered === 0, 3000, 'buffer flushed');
    assert.ok(subject.agent.store.get().agent.mqtt.reconnects >= 1);
  });

  it('delivers buffered events to a dashboard with a persistent session; beyond the buffer the oldest are dropped and counted', async function () {
    needRig(this);
    // A fleet broker keeps sessions across its restarts; without that, whether the dashboard or
    // the agent reconnects first would decide what the dashboard sees.
    broker = await startMosquitto(tempDir('rfa-mq-'), { persistence: true });
    subject = await startAgent({ mqtt: { url: broker.url, eventBuffer: 10 } });
    await waitUntil(() => subject!.agent.store.get().agent.mqtt.connected, 5000, 'connected');
    // The dashboard will be offline too while the broker is down, so it keeps a session.
    const dashboardId = `dash-${Date.now()}`;
    const session = {
      protocolVersion: 5 as const,
      clientId: dashboardId,
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    };
    probe = await MqttProbe.connect(broker.url, session);
    await probe.subscribe(`${subject.base}/events`, `${subject.base}/response/#`);
    await probe.close();
    await broker.stop();
    await waitUntil(() => !subject!.agent.store.get().agent.mqtt.connected, 5000, 'disconnected');
    for (let n = 1; n <= 15; n += 1) subject.agent.bus.emit('test.offline', { n });
    assert.equal(subject.agent.store.get().agent.mqtt.eventsDropped, 5);
    await broker.start();
    // Whoever comes back first, the broker holds the events for the dashboard's session.
    await waitUntil(
      () =>
        subject!.agent.store.get().agent.mqtt.eventsBuffered === 0 && subject!.agent.store.get().agent.mqtt.connected,
      8000,
      'agent flushed',
    );
    probe = await MqttProbe.connect(broker.url, session);
    const got = await waitUntil(
      () => {
        const ns = probe!.received
          .map((m) => JSON.parse(m.text) as { type: string; n?: number })
          .filter((e) => e.type === 'test.offline')
          .map((e) => e.n);
        return ns.length >= 10 ? ns : undefined;
      },
      8000,
      'ten buffered events',
    );
    assert.deepEqual(got, [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    const state = await probe.request(subject.base, 'state', { id: 'after' });
    assert.equal((state.result as { agent: { mqtt: { eventsDropped: number } } }).agent.mqtt.eventsDropped, 5);
  });

  it('a module that fails to start is reported and retried while the daemon lives on', async function () {
    needRig(this);
    // The state directory cannot be made while a file stands where its parent should be. (Not the
    // embedded broker's port: a broker that cannot listen is fatal, see test/security.)
    broker = await startMosquitto(tempDir('rfa-mq-'));
    const blocker = join(tempDir(), 'blocker');
    writeFileSync(blocker, 'not a directory');
    subject = await startAgent({
      mqtt: { url: broker.url, protocolVersion: 5 },
      state: { dir: join(blocker, 'state') },
    });
    const failed = subject.agent.store.get().agent.modules['state-dir'];
    assert.equal(failed?.status, 'failed');
    assert.equal(failed?.error?.code, 'state_dir');
    assert.ok(
      subject.logs.some(
        (l) => l.msg === 'module failed to start; will retry' && l.module === 'supervisor' && l.target === 'state-dir',
      ),
    );
    rmSync(blocker);
    await waitUntil(
      () => subject!.agent.store.get().agent.modules['state-dir']?.status === 'running',
      5000,
      'state dir retried',
    );
    probe = await MqttProbe.connect(broker.url, { protocolVersion: 5 });
    await probe.subscribe(`${subject.base}/#`);
    await waitUntil(() => subject!.agent.store.get().agent.mqtt.connected, 5000, 'agent connected to its broker');
    assert.equal((await probe.request(subject.base, 'ping', { id: 'alive' })).ok, true);
  });
});
