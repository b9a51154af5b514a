import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { AgentError } from '../../agent/core/errors.js';
import { DesiredListener } from '../../agent/containers/desired-listener.js';
import { DESIRED_LIMITS, parseDesired } from '../../agent/containers/desired-state.js';
import { createLogger } from '../../agent/core/logger.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { freePort } from '../rig/net.js';

/**
 * Attack family "desired-state abuse": <b>/desired is retained and fed into the state and
 * events, so whoever can publish it could grow the robot's memory and its published state.
 */
const IMAGE = 'yahboomtechnology/ros-foxy:3.3.9';
const config = { containers: { ros: { image: IMAGE } }, images: { allow: ['yahboomtechnology/*'] } } as never;

function refusal(payload: string | Buffer): AgentError {
  try {
    parseDesired(Buffer.isBuffer(payload) ? payload : Buffer.from(payload), config);
  } catch (err) {
    if (err instanceof AgentError) return err;
    throw err;
  }
  throw new Error('accepted');
}

describe('security: desired-state abuse (parse)', function () {
  it('refuses a payload over 64 KiB before parsing it: a 4 MiB version is too_large', () => {
    const err = refusal(JSON.stringify({ containers: {}, version: 'v'.repeat(4 * 1024 * 1024) }));
    assert.equal(err.code, 'too_large');
    assert.match(err.message, /limit is 65536/);
    assert.ok(err.message.length < 200);
  });

  it('refuses a version over 128 characters and one that is not a safe integer', () => {
    assert.equal(refusal(JSON.stringify({ containers: {}, version: 'v'.repeat(129) })).code, 'invalid_desired');
    assert.equal(refusal('{"containers":{},"version":1e300}').code, 'invalid_desired');
    assert.deepEqual(parseDesired(Buffer.from(JSON.stringify({ containers: {}, version: 'v'.repeat(128) })), config), {
      containers: {},
      version: 'v'.repeat(128),
    });
  });

  it('a long container name is refused, and the refusal quotes at most 120 characters of it', () => {
    const name = 'n'.repeat(60_000);
    const err = refusal(JSON.stringify({ containers: { [name]: { enabled: true } } }));
    assert.equal(err.code, 'invalid_desired');
    assert.ok(err.message.length <= DESIRED_LIMITS.maxMessageChars, `message of ${err.message.length} characters`);
    assert.ok(!err.message.includes('n'.repeat(DESIRED_LIMITS.maxEchoChars)));
  });

  it('an unknown container of a legal name is echoed clipped', () => {
    const err = refusal(JSON.stringify({ containers: { ['x'.repeat(63)]: { enabled: true } } }));
    assert.equal(err.code, 'unknown_container');
    assert.ok(err.message.length <= DESIRED_LIMITS.maxMessageChars);
  });

  it('thousands of unknown keys make one short refusal that counts the rest', () => {
    const doc: Record<string, unknown> = { containers: {} };
    for (let i = 0; i < 4000; i += 1) doc[`k${i}`] = 1;
    const payload = JSON.stringify(doc);
    assert.ok(payload.length < DESIRED_LIMITS.maxBytes);
    const err = refusal(payload);
    assert.equal(err.code, 'invalid_desired');
    assert.ok(err.message.length <= DESIRED_LIMITS.maxMessageChars, `message of ${err.message.length} characters`);
    assert.match(err.message, /and 3995 more problem\(s\)$/);
  });

  it('deep nesting is refused: past 64 KiB unparsed, within it with a short message', () => {
    const deep = (n: number) => `{"containers":{},"version":${'['.repeat(n)}${']'.repeat(n)}}`;
    assert.equal(refusal(deep(600_000)).code, 'too_large');
    const within = refusal(deep(30_000));
    assert.equal(within.code, 'invalid_desired');
    assert.ok(within.message.length <= DESIRED_LIMITS.maxMessageChars);
  });

  it('more than 32 containers and keys beside image and enabled are refused', () => {
    const many: Record<string, unknown> = {};
    for (let i = 0; i < 33; i += 1) many[`c${i}`] = {};
    assert.equal(refusal(JSON.stringify({ containers: many })).code, 'invalid_desired');
    assert.equal(
      refusal(JSON.stringify({ containers: { ros: { image: IMAGE, privileged: true } } })).code,
      'invalid_desired',
    );
  });
});

describe('security: a flood of desired messages', function () {
  it('holds only the newest while one is applied: 1,000 messages make two applies, the first and the last', async () => {
    let deliver: ((topic: string, payload: Buffer) => void) | undefined;
    const link = { onMessage: (listener: typeof deliver) => ((deliver = listener), () => undefined) };
    const applied: string[] = [];
    let release: (() => void) | undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const listener = new DesiredListener({
      link: link as never,
      topic: 'fleet/r/desired',
      apply: async (payload) => {
        applied.push(payload.toString());
        await gate;
      },
      logger: createLogger({ level: 'error', write: () => undefined }),
    });
    await listener.start();
    for (let i = 0; i < 1000; i += 1) deliver!('fleet/r/desired', Buffer.from(String(i)));
    deliver!('fleet/r/other', Buffer.from('ignored'));
    release!();
    await waitUntil(() => applied.length === 2, 5000, 'the newest applied');
    await listener.stop();
    assert.deepEqual(applied, ['0', '999']);
  });
});

describe('security: desired-state abuse (through the embedded broker)', function () {
  this.timeout(60_000);
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;

  afterEach(async () => {
    await probe?.close();
    await subject?.stop();
    probe = undefined;
    subject = undefined;
  });

  it('a refused desired echoes a clipped name into the event and the state, and clearing leaves no residue', async () => {
    subject = await startAgent({ containers: { ros: { image: IMAGE } } });
    const s = subject;
    const events: Array<{ type: string; error?: { message: string } }> = [];
    s.agent.bus.subscribe((e) => events.push(e as never));
    probe = await MqttProbe.connect(`mqtt://127.0.0.1:${s.agent.embeddedBroker!.port}`, { protocolVersion: 4 });
    await probe.subscribe(`${s.base}/response/#`);
    await waitUntil(() => s.agent.store.get().agent.mqtt.connected, 10_000, 'agent connected to its broker');
    const name = 'z'.repeat(60_000);
    await probe.client.publishAsync(
      `${s.base}/desired`,
      JSON.stringify({ containers: { [name]: { enabled: true } }, version: 'big' }),
      { qos: 1, retain: true },
    );
    const rejected = await waitUntil(
      () => events.find((e) => e.type === 'desired.rejected'),
      10_000,
      'desired.rejected',
    );
    assert.ok(JSON.stringify(rejected).length < 2048, `event of ${JSON.stringify(rejected).length} bytes`);
    assert.ok((s.agent.store.get().desired.rejected?.message.length ?? 0) <= DESIRED_LIMITS.maxMessageChars);

    // Many unknown keys, under the broker's packet cap but over the desired cap.
    const doc: Record<string, unknown> = { containers: {} };
    for (let i = 0; i < 30_000; i += 1) doc[`k${i}`] = i;
    events.length = 0;
    await probe.client.publishAsync(`${s.base}/desired`, JSON.stringify(doc), { qos: 1, retain: true });
    const tooLarge = await waitUntil(
      () => events.find((e) => e.type === 'desired.rejected'),
      10_000,
      'the second desired.rejected',
    );
    assert.match(tooLarge.error!.message, /limit is 65536/);

    await probe.client.publishAsync(`${s.base}/desired`, '', { qos: 1, retain: true });
    // The refusal was of a message the broker no longer holds: it goes from the state with it.
    await waitUntil(
      () => s.agent.store.get().desired.rejected === undefined,
      10_000,
      'the refusal cleared with the desired',
    );
    assert.equal(s.agent.store.get().desired.appliedAt, null);
    const state = JSON.stringify(s.agent.store.get());
    assert.ok(!state.includes('z'.repeat(DESIRED_LIMITS.maxEchoChars)), 'the refused name stays in the state');
    assert.ok(Buffer.byteLength(JSON.stringify(s.agent.store.get().desired)) < 2048, 'state.desired stays small');
    const ping = await probe.request(s.base, 'ping', { id: 'after-desired' });
    assert.equal(ping.ok, true);
  });
});

describe('security: a 64 MiB retained desired through the embedded broker (spawned agent)', function () {
  this.timeout(90_000);
  let agent: AgentProcess | undefined;

  after(() => {
    if (agent && agent.child.exitCode === null) agent.kill('SIGKILL');
  });

  const rssMiB = (pid: number) =>
    Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

  it('drops the publisher before the packet is buffered whole: nothing retained, RSS bounded, the agent answers', async () => {
    const port = await freePort();
    const dir = tempDir();
    const robot = `rss-${process.pid}`;
    const b = `fleet/${robot}`;
    agent = spawnAgent(['run'], {
      ROBOT_AGENT_ROBOT_ID: robot,
      ROBOT_AGENT_MQTT_EMBEDDED_PORT: String(port),
      ROBOT_AGENT_STATE_DIR: join(dir, 'state'),
      ROBOT_AGENT_DOCKER_SOCKET_PATH: join(dir, 'docker.sock'),
    });
    const url = `mqtt://127.0.0.1:${port}`;
    const login = () => ({
      username: 'robot-agent',
      password: readFileSync(join(dir, 'state', 'embedded-broker.password'), 'utf8').trim(),
    });
    const probe = await waitUntil(
      () => MqttProbe.connect(url, { protocolVersion: 4, reconnectPeriod: 0, ...login() }),
      20_000,
      'the embedded broker with its password',
    );
    try {
      await probe.subscribe(`${b}/#`);
      await probe.waitForTopic(`${b}/state`, 10_000);
      assert.equal((await probe.request(b, 'ping', { id: 'before' })).ok, true);
      const before = rssMiB(agent.child.pid!);

      const attacker = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, ...login() });
      attacker.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => attacker.once('close', () => resolve()));
      attacker.publish(`${b}/desired`, Buffer.alloc(64 * 1024 * 1024, 0x20), { qos: 0, retain: true }, () => undefined);
      await closed;
      attacker.end(true);

      assert.equal((await probe.request(b, 'ping', { id: 'after' })).ok, true);
      const after = rssMiB(agent.child.pid!);
      assert.ok(after - before < 32, `RSS grew from ${before.toFixed(0)} to ${after.toFixed(0)} MiB`);
      // Nothing was retained: a new subscriber to desired gets nothing, while state still comes.
      const late = await MqttProbe.connect(url, { protocolVersion: 4, ...login() });
      try {
        await late.subscribe(`${b}/desired`, `${b}/state`);
        await late.waitForTopic(`${b}/state`, 5000);
        assert.ok(!late.received.some((m) => m.topic === `${b}/desired`), 'the oversized desired was retained');
      } finally {
        await late.close();
      }
    } finally {
      await probe.close();
    }
  });
});
