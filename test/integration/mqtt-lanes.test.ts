import assert from 'node:assert/strict';
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { mqttStreamBuilder } from '../../agent/mqtt/mqtt-link.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig } from '../setup.js';

/** A registry that accepts connections and never answers (a Wi-Fi link that died quietly). */
async function silentRegistry(): Promise<{ port: number; close(): Promise<void> }> {
  const held = new Set<Socket>();
  const server: Server = createServer((socket) => {
    held.add(socket);
    socket.on('close', () => held.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('command lanes on the rig (issue 19.3)', function () {
  this.timeout(40_000);
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;
  let registry: { port: number; close(): Promise<void> } | undefined;

  afterEach(async () => {
    await probe?.close();
    // Closing the registry first ends the plans still waiting on it.
    await registry?.close();
    await subject?.stop();
    probe = undefined;
    subject = undefined;
    registry = undefined;
  });

  it('eight plans against a registry that never answers fill the long lane only: ping, state, devices, containers still answer', async function () {
    const rig = needRig(this);
    registry = await silentRegistry();
    const host = `127.0.0.1:${registry.port}`;
    subject = await startAgent({
      mqtt: { url: rig.mqtt.url },
      docker: { socketPath: rig.docker.socketPath },
      images: { allow: [`${host}/**`] },
    });
    const b = subject.base;
    probe = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    await probe.subscribe(`${b}/response/#`);
    await waitUntil(() => subject!.agent.store.get().docker.available, 10_000, 'docker connected');
    for (let i = 0; i < 8; i += 1) {
      const body = { id: `plan-${i}`, image: `${host}/yahboomtechnology/ros-foxy:${i}` };
      await probe.client.publishAsync(`${b}/request/plan`, JSON.stringify(body), { qos: 1 });
    }
    // Four run (and hang); the other four are refused at once.
    const busy = await waitUntil(
      () => {
        const answers = probe!.messagesOn(`${b}/response/plan`);
        const codes = answers.map((m) => (JSON.parse(m.text) as { error?: { code: string } }).error?.code);
        return codes.length >= 4 ? codes : undefined;
      },
      10_000,
      'four busy plans',
    );
    assert.deepEqual(busy, ['busy', 'busy', 'busy', 'busy']);
    for (const command of ['ping', 'state', 'devices', 'containers']) {
      const response = await probe.request(b, command, { id: `quick-${command}` }, 5000);
      assert.equal(response.ok, true, `${command}: ${JSON.stringify(response).slice(0, 300)}`);
    }
    const plans = probe.messagesOn(`${b}/response/plan`);
    assert.equal(plans.length, 4, 'the four running plans are still waiting on the registry');
  });

  it('the agent socket has TCP_NODELAY set, plain and TLS (issue 19.4)', async function () {
    const rig = needRig(this);
    // Node keeps what setNoDelay() asked for under this symbol, applied to the handle once it connects.
    const noDelay = (socket: object) => {
      const symbol = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'kSetNoDelay');
      assert.ok(symbol, 'this Node keeps no kSetNoDelay on its sockets');
      return (socket as Record<symbol, unknown>)[symbol];
    };
    const plain = mqttStreamBuilder(rig.mqtt.url).streamBuilder() as Socket;
    await new Promise<void>((resolve, reject) => plain.once('connect', resolve).once('error', reject));
    assert.equal(noDelay(plain), true);
    plain.destroy();
    const c = rig.mqtt.certs;
    const { readFileSync } = await import('node:fs');
    const pems = { ca: readFileSync(c.ca), cert: readFileSync(c.clientCert), key: readFileSync(c.clientKey) };
    const secure = mqttStreamBuilder(rig.mqtt.tlsUrl, pems).streamBuilder() as Socket;
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    assert.equal(noDelay(secure), true);
    secure.destroy();
    // A bare socket for contrast: the default is off, so the check above means something.
    const bare = netConnect({ host: '127.0.0.1', port: rig.mqtt.port });
    await new Promise<void>((resolve, reject) => bare.once('connect', resolve).once('error', reject));
    assert.equal(noDelay(bare), false);
    bare.destroy();
  });
});
