import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { Contract } from '../helpers/contract.js';
import { freePort } from '../rig/net.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir } from '../helpers/temp.js';

/**
 * The "tried as a new user would": the agent on config/default.yaml (only the port, the
 * state dir and the Docker socket moved so the test touches nothing of the machine's).
 */
describe('agent on its embedded defaults (spawned)', function () {
  const contract = new Contract();
  let agent: AgentProcess;
  let probe: MqttProbe;
  let port: number;
  /** The embedded broker requires the password the agent made in its state dir, as user robot-agent. */
  let auth: { username: string; password: string };
  const robot = `embedded-${process.pid}`;
  const b = `fleet/${robot}`;

  before(async function () {
    port = await freePort();
    const dir = tempDir();
    agent = spawnAgent(['run'], {
      ROBOT_AGENT_ROBOT_ID: robot,
      ROBOT_AGENT_MQTT_EMBEDDED_PORT: String(port),
      ROBOT_AGENT_STATE_DIR: join(dir, 'state'),
      ROBOT_AGENT_DOCKER_SOCKET_PATH: join(dir, 'docker.sock'),
    });
    const t0 = Date.now();
    for (;;) {
      try {
        auth = {
          username: 'robot-agent',
          password: readFileSync(join(dir, 'state', 'embedded-broker.password'), 'utf8').trim(),
        };
        probe = await MqttProbe.connect(`mqtt://127.0.0.1:${port}`, {
          reconnectPeriod: 0,
          protocolVersion: 4,
          ...auth,
        });
        break;
      } catch {
        if (Date.now() - t0 > 10_000)
          throw new Error(`embedded broker never came up:\n${agent.stdout.join('\n')}\n${agent.stderr.join('\n')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await probe.subscribe(`${b}/#`);
  });

  after(async () => {
    await probe?.close();
    if (agent.child.exitCode === null) agent.kill('SIGKILL');
  });

  it('publishes a retained online and a retained state with docker unavailable and why, within 10 s', async () => {
    await probe.waitForTopic(`${b}/availability`, 10_000, (m) => m.text === 'online');
    await probe.waitForTopic(`${b}/state`, 10_000);
    // Retained means a dashboard that subscribes later gets both at once.
    const late = await MqttProbe.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, ...auth });
    await late.subscribe(`${b}/availability`, `${b}/state`, `${b}/state/docker`, `${b}/state/agent`);
    const online = await late.waitForTopic(`${b}/availability`, 2000);
    const state = await late.waitForTopic(`${b}/state`, 2000);
    const dockerSection = await late.waitForTopic(`${b}/state/docker`, 2000);
    const agentSection = await late.waitForTopic(`${b}/state/agent`, 2000);
    await late.close();
    assert.equal(online.text, 'online');
    assert.equal(online.retain, true);
    assert.equal(state.retain, true);
    assert.equal(dockerSection.retain, true);
    const summary = JSON.parse(state.text) as { docker: boolean; status: string; why: string[] };
    contract.assert('state-summary.json', summary);
    assert.equal(summary.docker, false);
    assert.equal(summary.status, 'error');
    assert.equal(summary.why[0], 'Docker unavailable (docker_unreachable)');
    const docker = JSON.parse(dockerSection.text) as { available: boolean; error?: { code: string; message: string } };
    contract.assert('state.json#/properties/docker', docker);
    assert.equal(docker.available, false);
    assert.equal(docker.error?.code, 'docker_unreachable');
    assert.match(docker.error!.message, /docker\.sock/);
    assert.equal((JSON.parse(agentSection.text) as { mqtt: { broker: string } }).mqtt.broker, 'embedded');
  });

  it('answers ping', async () => {
    const response = await probe.request(b, 'ping', { id: 'p1' });
    assert.equal(response.ok, true);
    assert.equal((response.result as { pong: boolean }).pong, true);
    contract.assert('response.json', response);
    assert.deepEqual(contract.commandResultProblems('ping', response.result), []);
  });

  const badInputs: Array<[string, string, string | Buffer, string]> = [
    ['not JSON', 'ping', '{"id": ', 'bad_json'],
    ['a JSON array', 'ping', '[1,2]', 'bad_request'],
    ['a JSON string', 'ping', '"hello"', 'bad_request'],
    ['no id', 'ping', '{"x":1}', 'bad_request'],
    ['a numeric id', 'ping', '{"id":7}', 'bad_request'],
    ['over 256 KiB', 'ping', Buffer.alloc(256 * 1024 + 1, 0x20), 'too_large'],
    ['an unknown command', 'self-destruct', '{"id":"u1"}', 'unknown_command'],
    ['unexpected arguments', 'ping', '{"id":"a1","force":true}', 'invalid_args'],
  ];
  for (const [what, command, payload, code] of badInputs) {
    it(`answers ${what} with ${code} within 100 ms, and still answers ping`, async () => {
      const responseTopic = `${b}/response/${command}`;
      const since = Date.now();
      await probe.client.publishAsync(`${b}/request/${command}`, payload, { qos: 0 });
      const reply = await probe.waitFor(
        (m) =>
          m.topic === responseTopic &&
          m.at >= since &&
          (JSON.parse(m.text) as { error?: { code: string } }).error?.code === code,
        2000,
        code,
      );
      assert.ok(reply.at - since < 100, `answered after ${reply.at - since} ms`);
      const body = JSON.parse(reply.text) as { ok: boolean; id: unknown; error: { message: string } };
      contract.assert('response.json', body);
      assert.equal(body.ok, false);
      assert.ok(body.error.message.length > 0);
      const pong = await probe.request(b, 'ping', { id: `after-${code}-${since}` });
      assert.equal(pong.ok, true);
    });
  }

  it('a duplicate request id is answered again from memory, not run twice', async () => {
    const first = await probe.request(b, 'ping', { id: 'dup-1' });
    await new Promise((r) => setTimeout(r, 20));
    const second = await probe.request(b, 'ping', { id: 'dup-1' });
    assert.deepEqual(second, first);
  });

  it('state republishes and returns the state', async () => {
    const since = Date.now();
    const response = await probe.request(b, 'state', { id: 's1' });
    assert.equal(response.ok, true);
    contract.assert('state.json', response.result);
    await probe.waitFor((m) => m.topic === `${b}/state` && m.at >= since, 2000, 'a republished state');
  });

  it('on SIGTERM publishes offline (retained) and exits 0 within 5 s', async () => {
    probe.clear();
    const t0 = Date.now();
    agent.kill('SIGTERM');
    // The embedded broker ends with the agent, so retention of offline is proven on mosquitto
    // (mqtt-link tests); here: it is said before the agent goes.
    await probe.waitForTopic(`${b}/availability`, 5000, (m) => m.text === 'offline');
    assert.equal(await agent.exited(5000), 0);
    assert.ok(Date.now() - t0 < 5000);
    const logs = agent.logs();
    assert.ok(
      !logs.some((l) => l.level === 'error'),
      `errors logged:\n${logs
        .filter((l) => l.level === 'error')
        .map((l) => JSON.stringify(l))
        .join('\n')}`,
    );
  });
});
