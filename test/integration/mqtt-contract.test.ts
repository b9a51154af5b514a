import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnAgent } from '../helpers/agent-process.js';
import { startAgent, uniqueRobotId, type AgentUnderTest } from '../helpers/agent-harness.js';
import { Contract } from '../helpers/contract.js';
import { STATE_SECTIONS } from '../../agent/mqtt/state-publisher.js';
import { SUMMARY_LIMIT_BYTES } from '../../agent/mqtt/summary.js';
import { MqttProbe, type Received } from '../helpers/mqtt-probe.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import { sleep } from '../helpers/wait.js';
import { needRig } from '../setup.js';

describe('MQTT contract against mosquitto', function () {
  const contract = new Contract();
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;

  afterEach(async () => {
    await probe?.close();
    await subject?.stop();
    probe = undefined;
    subject = undefined;
  });

  function validate(base: string, m: Received): void {
    const leaf = m.topic.slice(base.length + 1);
    if (leaf === 'availability') contract.assert('availability.json', m.text);
    else if (leaf === 'state') contract.assert('state-summary.json', JSON.parse(m.text));
    else if (leaf.startsWith('state/')) {
      contract.assert(`state.json#/properties/${leaf.slice('state/'.length)}`, JSON.parse(m.text));
    } else if (leaf === 'events') contract.assert('event.json', JSON.parse(m.text));
    else if (leaf.startsWith('response/')) contract.assert('response.json', JSON.parse(m.text));
    else if (!leaf.startsWith('request/')) assert.fail(`undocumented topic ${m.topic}`);
  }

  it('everything the agent sends over MQTT 5 conforms to docs/schemas', async function () {
    const rig = needRig(this);
    probe = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    const robot = uniqueRobotId();
    await probe.subscribe(`fleet/${robot}/#`);
    subject = await startAgent({
      robot: { id: robot },
      mqtt: { url: rig.mqtt.url },
      docker: { socketPath: rig.docker.socketPath },
    });
    await probe.waitForTopic(`${subject.base}/availability`, 5000, (m) => m.text === 'online');
    const on = (leaf: string) => (m: Received) => m.topic === `${subject!.base}/${leaf}`;
    const summaryUp = (m: Received) => on('state')(m) && (JSON.parse(m.text) as { docker: boolean }).docker;
    await probe.waitFor(summaryUp, 5000, 'a summary with docker');
    const dockerUp = (m: Received) => on('state/docker')(m) && (JSON.parse(m.text) as { available: boolean }).available;
    await probe.waitFor(dockerUp, 5000, 'state/docker available');
    await probe.request(subject.base, 'ping', { id: 'c1' });
    await probe.request(subject.base, 'state', { id: 'c2' });
    await probe.request(subject.base, 'nope', { id: 'c3' });
    await probe.waitFor(
      (m) => m.topic === `${subject!.base}/events` && m.text.includes('docker.connected'),
      5000,
      'docker.connected',
    );
    await subject.stop();
    await probe.waitForTopic(`${subject.base}/availability`, 3000, (m) => m.text === 'offline');
    const topics = new Set(probe.received.map((m) => m.topic.slice(subject!.base.length + 1)));
    for (const leaf of ['availability', 'state', 'events', 'response/ping', 'response/state', 'response/nope'])
      assert.ok(topics.has(leaf), `nothing on ${leaf}`);
    for (const section of STATE_SECTIONS) assert.ok(topics.has(`state/${section}`), `nothing on state/${section}`);
    for (const m of probe.received) validate(subject.base, m);
    for (const m of probe.messagesOn(`${subject.base}/state`)) {
      assert.ok(m.payload.length <= SUMMARY_LIMIT_BYTES, `a summary of ${m.payload.length} bytes`);
    }
  });

  it('answers on the MQTT 5 response topic with the correlation data, as well as on response/<command>', async function () {
    const rig = needRig(this);
    subject = await startAgent({ mqtt: { url: rig.mqtt.url } });
    probe = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    await probe.subscribe('dashboard/replies/#', `${subject.base}/response/#`);
    await sleep(300);
    const correlation = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
    await probe.client.publishAsync(`${subject.base}/request/ping`, JSON.stringify({ id: 'v5' }), {
      qos: 1,
      properties: { responseTopic: 'dashboard/replies/42', correlationData: correlation },
    });
    const direct = await probe.waitForTopic('dashboard/replies/42', 3000);
    assert.deepEqual(direct.packet.properties?.correlationData, correlation);
    assert.equal((JSON.parse(direct.text) as { id: string; ok: boolean }).ok, true);
    await probe.waitForTopic(`${subject.base}/response/ping`, 3000);
  });

  it('speaks MQTT 3.1.1 when configured to', async function () {
    const rig = needRig(this);
    subject = await startAgent({ mqtt: { url: rig.mqtt.url, protocolVersion: 4 } });
    probe = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 4 });
    await probe.subscribe(`${subject.base}/#`);
    const response = await probe.request(subject.base, 'ping', { id: 'v4' });
    assert.equal(response.ok, true);
    assert.equal(subject.agent.store.get().agent.mqtt.protocolVersion, 4);
  });

  it('coalesces a burst of changes into one section publish within 1 s; the summary on heartbeats', async function () {
    this.timeout(15_000);
    const rig = needRig(this);
    subject = await startAgent({ mqtt: { url: rig.mqtt.url, heartbeat: 5 }, metrics: { interval: 3600 } });
    probe = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    await probe.subscribe(`${subject.base}/state`, `${subject.base}/state/+`);
    await probe.waitForTopic(`${subject.base}/state`, 3000);
    await sleep(500);
    probe.clear();
    const t0 = Date.now();
    for (let i = 1; i <= 20; i += 1) subject.agent.store.update('host', (h) => ({ ...h, hostname: `burst-${i}` }));
    await sleep(1000);
    const burst = probe.messagesOn(`${subject.base}/state/host`);
    assert.equal(burst.length, 1, `${burst.length} publishes for one burst`);
    assert.ok(burst[0]!.at - t0 < 1000);
    assert.equal((JSON.parse(burst[0]!.text) as { hostname: string }).hostname, 'burst-20');
    const topics = () => probe!.received.map((m) => m.topic);
    assert.deepEqual(topics(), [`${subject.base}/state/host`], 'nothing but the section that changed');
    probe.clear();
    const beat = await probe.waitForTopic(`${subject.base}/state`, 6000);
    assert.ok(beat.at - t0 >= 3000, 'a heartbeat, not a change');
    assert.deepEqual(topics(), [`${subject.base}/state`], 'the heartbeat is the summary alone');
  });

  it('a crashed agent is marked offline by its last will (retained)', async function () {
    const rig = needRig(this);
    const dir = tempDir();
    const robot = uniqueRobotId('crash');
    const config = writeYaml(dir, 'c.yaml', {
      robot: { id: robot },
      mqtt: { url: rig.mqtt.url },
      state: { dir: join(dir, 's') },
      docker: { socketPath: join(dir, 'none.sock') },
    });
    const agent = spawnAgent(['run', '--config', config]);
    probe = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    await probe.subscribe(`fleet/${robot}/availability`);
    await probe.waitForTopic(`fleet/${robot}/availability`, 10_000, (m) => m.text === 'online');
    agent.kill('SIGKILL');
    await agent.exited();
    await probe.waitForTopic(`fleet/${robot}/availability`, 5000, (m) => m.text === 'offline');
    const late = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    await late.subscribe(`fleet/${robot}/availability`);
    const retained = await late.waitForTopic(`fleet/${robot}/availability`, 2000);
    await late.close();
    assert.equal(retained.text, 'offline');
    assert.equal(retained.retain, true);
  });

  it('a clean stop leaves offline retained', async function () {
    const rig = needRig(this);
    subject = await startAgent({ mqtt: { url: rig.mqtt.url } });
    probe = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    await probe.subscribe(`${subject.base}/availability`);
    await probe.waitForTopic(`${subject.base}/availability`, 3000, (m) => m.text === 'online');
    await subject.stop();
    const late = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    await late.subscribe(`${subject.base}/availability`);
    const retained = await late.waitForTopic(`${subject.base}/availability`, 2000);
    await late.close();
    assert.equal(retained.text, 'offline');
    assert.equal(retained.retain, true);
  });
});
