import assert from 'node:assert/strict';
import { createLogger } from '../../agent/core/logger.js';
import { MqttLink } from '../../agent/mqtt/mqtt-link.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { MqttProbe, type Received } from '../helpers/mqtt-probe.js';
import { tempDir } from '../helpers/temp.js';
import { sleep, waitUntil } from '../helpers/wait.js';
import { startMosquitto, type MosquittoRig } from '../rig/mosquitto.js';
import { needRig } from '../setup.js';

/** Topic and response-topic abuse against a real mosquitto (issue 12.2). */
describe('MQTT topic and response-topic abuse', function () {
  this.timeout(40_000);
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;
  let broker: MosquittoRig | undefined;
  let link: MqttLink | undefined;

  afterEach(async () => {
    await probe?.close();
    await subject?.stop();
    await link?.stop(500);
    await broker?.stop();
    probe = undefined;
    subject = undefined;
    link = undefined;
    broker = undefined;
  });

  it('hostile MQTT 5 response topics cost one coded answer each, never the link: 12 of 12 pings answered after', async function () {
    const rig = needRig(this);
    subject = await startAgent({ mqtt: { url: rig.mqtt.url, protocolVersion: 5 } });
    const b = subject.base;
    probe = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    await probe.subscribe('#');
    await waitUntil(() => subject!.agent.store.get().agent.mqtt.connected, 5000, 'agent connected');
    await sleep(300);
    const hostile: Array<[string, Record<string, unknown>]> = [
      ['x/#', {}],
      ['a/+/b', {}],
      ['#', {}],
      ['$SYS/broker/robot', {}],
      [`replies/${'r'.repeat(300)}`, {}],
      [`${b}/desired`, {}],
      [`${b}/availability`, {}],
      [`${b}/state`, {}],
      [`${b}/request/stop`, {}],
      ['fleet/some-other-robot/desired', {}],
    ];
    for (const [i, [responseTopic]] of hostile.entries()) {
      const id = `hostile-${i}`;
      const properties = { responseTopic, correlationData: Buffer.from(id) };
      await probe.client.publishAsync(`${b}/request/ping`, JSON.stringify({ id }), { qos: 1, properties });
      const answers = (m: Received) => m.topic === `${b}/response/ping` && m.text.includes(`"${id}"`);
      const reply = await probe.waitFor(answers, 5000, `the answer to ${responseTopic.slice(0, 40)}`);
      const body = JSON.parse(reply.text) as { ok: boolean; error?: { code: string } };
      assert.equal(body.ok, false);
      assert.equal(body.error?.code, 'bad_response_topic', `for ${responseTopic.slice(0, 40)}`);
    }
    await probe.client.publishAsync(`${b}/request/ping`, JSON.stringify({ id: 'big-correlation' }), {
      qos: 1,
      properties: { responseTopic: 'dashboard/replies/1', correlationData: Buffer.alloc(4096, 1) },
    });
    const isAnswer = (m: Received) => m.topic === `${b}/response/ping` && m.text.includes('"big-correlation"');
    const refused = await probe.waitFor(isAnswer, 5000, 'the big correlation data answer');
    assert.equal((JSON.parse(refused.text) as { error?: { code: string } }).error?.code, 'bad_correlation_data');

    let answered = 0;
    for (let n = 0; n < 12; n += 1) {
      if ((await probe.request(b, 'ping', { id: `after-${n}` }, 5000)).ok === true) answered += 1;
    }
    assert.equal(answered, 12);
    const mqtt = subject.agent.store.get().agent.mqtt;
    assert.equal(mqtt.connected, true);
    assert.equal(mqtt.reconnects, 0, 'the broker never dropped the robot');
    // The robot published nothing on the hostile topics, nor on other robots' topics.
    const forbidden = ['fleet/some-other-robot/desired', `${b}/desired`];
    const stray = probe.received.filter((m) => m.topic.includes('replies/r') || forbidden.includes(m.topic));
    assert.deepEqual(
      stray.map((m) => m.topic),
      [],
    );
  });

  for (const protocolVersion of [5, 4] as const) {
    it(`a publish the broker drops the connection for is dropped, not replayed after every reconnect (MQTT ${protocolVersion === 5 ? '5' : '3.1.1'})`, async function () {
      needRig(this);
      // The broker takes packets up to 20 kB and drops a client that sends a bigger one.
      broker = await startMosquitto(tempDir('rfa-mq-'), { extraConfig: ['max_packet_size 20000'] });
      const logs: Array<Record<string, unknown>> = [];
      link = new MqttLink({
        url: broker.url,
        clientId: `poison-${protocolVersion}-${Date.now()}`,
        protocolVersion,
        keepaliveSeconds: 30,
        sessionExpirySeconds: 300,
        availabilityTopic: 'poison/availability',
        subscriptions: [],
        reconnect: { initialMs: 100, maxMs: 400 },
        queueCapacity: 100,
        logger: createLogger({
          level: 'debug',
          write: (line) => void logs.push(JSON.parse(line) as Record<string, unknown>),
        }),
      });
      probe = await MqttProbe.connect(broker.url, { protocolVersion: 5 });
      await probe.subscribe('poison/#');
      await link.start();
      await waitUntil(() => link!.connected, 5000, 'link connected');
      link.send({ topic: 'poison/big', payload: Buffer.alloc(30_000, 0x61), qos: 1, retain: false }, 'queue');
      await waitUntil(() => link!.stats.reconnects >= 1 && link!.connected, 5000, 'the link back after the refusal');
      // MQTT 3.1.1 brokers only close: the message is known by being the oldest unacknowledged twice.
      await waitUntil(() => link!.stats.refused === 1 && link!.connected, 8000, 'the refused message dropped');
      const reconnects = link.stats.reconnects;
      link.send({ topic: 'poison/after', payload: 'still here', qos: 1, retain: false }, 'queue');
      await probe.waitForTopic('poison/after', 5000);
      await sleep(1500);
      assert.equal(link.connected, true);
      assert.equal(link.stats.reconnects, reconnects, 'no reconnect after the message was dropped');
      assert.ok(reconnects <= 2, `${reconnects} reconnects for one bad message`);
      assert.equal(probe.messagesOn('poison/big').length, 0);
      assert.ok(logs.some((l) => l.msg === 'dropped a message the broker refused; it will not be sent again'));
    });
  }

  it('the link refuses to send to an invalid topic and stays connected', async function () {
    const rig = needRig(this);
    link = new MqttLink({
      url: rig.mqtt.url,
      clientId: `badtopic-${Date.now()}`,
      protocolVersion: 5,
      keepaliveSeconds: 30,
      sessionExpirySeconds: 300,
      availabilityTopic: `badtopic-${Date.now()}/availability`,
      subscriptions: [],
      reconnect: { initialMs: 100, maxMs: 400 },
      queueCapacity: 100,
      logger: createLogger({ level: 'error', write: () => undefined }),
    });
    await link.start();
    await waitUntil(() => link!.connected, 5000, 'link connected');
    for (const topic of ['x/#', 'a/+/b', '', 'nul\u0000x', 'lone\ud800x']) {
      link.send({ topic, payload: 'x', qos: 1, retain: false }, 'queue');
    }
    await assert.rejects(link.publishNow({ topic: 'y/#', payload: 'x', qos: 1, retain: false }), /holds a wildcard/);
    await sleep(500);
    assert.equal(link.connected, true);
    assert.equal(link.stats.reconnects, 0);
    assert.equal(link.stats.queued, 0, 'nothing kept for a replay');
    assert.equal(link.stats.refused, 5);
  });
});
