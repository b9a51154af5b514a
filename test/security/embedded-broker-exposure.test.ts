import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { AgentError } from '../../agent/core/errors.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { freePort } from '../rig/net.js';

/**
 * Attack family "embedded broker exposure": ROS containers run with network: host, so anything
 * on the robot reaches the embedded broker on loopback, and through it the agent (root).
 */
describe('security: embedded broker exposure', function () {
  this.timeout(60_000);
  let subject: AgentUnderTest | undefined;
  let squatter: Server | undefined;
  let spawned: AgentProcess | undefined;

  afterEach(async () => {
    await subject?.stop();
    subject = undefined;
    if (spawned && spawned.child.exitCode === null) spawned.kill('SIGKILL');
    spawned = undefined;
    await new Promise<void>((resolve) => (squatter ? squatter.close(() => resolve()) : resolve()));
    squatter = undefined;
  });

  const stateDirOf = (s: AgentUnderTest) => s.loaded.config.state.dir;
  const refused = /Bad username or password|Not authorized|Connection refused/i;

  it('on its defaults refuses an anonymous client and a wrong password; the password from state.dir works', async () => {
    subject = await startAgent({});
    const s = subject;
    await waitUntil(() => s.agent.store.get().agent.mqtt.connected, 10_000, 'the agent connected to its own broker');
    const url = `mqtt://127.0.0.1:${s.agent.embeddedBroker!.port}`;
    await assert.rejects(mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0 }), refused);
    await assert.rejects(
      mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, username: 'robot-agent', password: 'guess' }),
      refused,
    );
    const password = readFileSync(join(stateDirOf(s), 'embedded-broker.password'), 'utf8').trim();
    await assert.rejects(
      mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, username: 'admin', password }),
      refused,
    );
    const probe = await MqttProbe.connect(url, { protocolVersion: 4, username: 'robot-agent', password });
    await probe.subscribe(`${s.base}/#`);
    assert.equal((await probe.request(s.base, 'ping', { id: 'auth' })).ok, true);
    await probe.close();
    assert.ok(!JSON.stringify(s.logs).includes(password), 'the password is in the logs');
    assert.ok(!JSON.stringify(s.agent.store.get()).includes(password), 'the password is in the state');
  });

  it('makes its password once: 0600, owned by the agent, 32 random bytes in base64url, the same after a restart', async () => {
    const dir = join(tempDir(), 'state');
    subject = await startAgent({ state: { dir } });
    const file = join(dir, 'embedded-broker.password');
    const stat = statSync(file);
    assert.equal(stat.mode & 0o777, 0o600);
    assert.equal(stat.uid, process.getuid!());
    const password = readFileSync(file, 'utf8').trim();
    assert.match(password, /^[A-Za-z0-9_-]{43}$/);
    await subject.stop();
    subject = await startAgent({ state: { dir } });
    assert.equal(readFileSync(file, 'utf8').trim(), password);
    assert.equal(subject.agent.embeddedBroker!.credentials.password, password);
  });

  it('never writes or reads the password through a planted symbolic link, nor uses a file others can read', async () => {
    const root = tempDir();
    const dir = join(root, 'state');
    mkdirSync(dir);
    const target = join(root, 'where-the-attacker-reads');
    symlinkSync(target, join(dir, 'embedded-broker.password'));
    await assert.rejects(startAgent({ state: { dir } }), (err: unknown) => {
      assert.ok(err instanceof AgentError);
      assert.equal(err.code, 'embedded_password_file');
      assert.match(err.message, /is a symbolic link/);
      return true;
    });
    assert.equal(existsSync(target), false, 'the password was written through the link');
    assert.ok(lstatSync(join(dir, 'embedded-broker.password')).isSymbolicLink());

    // A link to a file the attacker wrote (and so knows) is refused the same way.
    writeFileSync(target, 'known-to-the-attacker\n', { mode: 0o600 });
    await assert.rejects(startAgent({ state: { dir } }), /is a symbolic link/);

    const readable = join(root, 'readable');
    mkdirSync(readable);
    writeFileSync(join(readable, 'embedded-broker.password'), 'world-readable\n');
    chmodSync(join(readable, 'embedded-broker.password'), 0o644);
    await assert.rejects(startAgent({ state: { dir: readable } }), /has mode 0644; it must be 0600/);
  });

  it('a taken port is fatal in process: embedded_broker_port_taken, and nothing connects to the squatter', async () => {
    const port = await freePort();
    const connections: Socket[] = [];
    squatter = createServer((socket) => {
      connections.push(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => squatter!.listen(port, '127.0.0.1', resolve));
    await assert.rejects(startAgent({ mqtt: { embedded: { port } } }), (err: unknown) => {
      assert.ok(err instanceof AgentError);
      assert.equal(err.code, 'embedded_broker_port_taken');
      assert.match(err.message, new RegExp(`another process already listens on port ${port}`));
      assert.match(err.message, /mqtt\.embedded\.port/);
      assert.match(err.message, /mqtt\.url/);
      return true;
    });
    assert.equal(connections.length, 0, 'the agent connected to a broker it did not start');
  });

  it('a taken port stops the spawned agent with exit code 1 and the sentence, and it never talks to the squatter', async () => {
    const port = await freePort();
    const received: Buffer[] = [];
    squatter = createServer((socket) => {
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => squatter!.listen(port, '127.0.0.1', resolve));
    const dir = tempDir();
    spawned = spawnAgent(['run'], {
      ROBOT_AGENT_ROBOT_ID: `squat-${process.pid}`,
      ROBOT_AGENT_MQTT_EMBEDDED_PORT: String(port),
      ROBOT_AGENT_STATE_DIR: join(dir, 'state'),
      ROBOT_AGENT_DOCKER_SOCKET_PATH: join(dir, 'docker.sock'),
    });
    assert.equal(await spawned.exited(20_000), 1);
    const output = [...spawned.stdout, ...spawned.stderr].join('\n');
    assert.match(output, /embedded_broker_port_taken/);
    assert.match(output, new RegExp(`another process already listens on port ${port}`));
    assert.equal(Buffer.concat(received).length, 0, 'the agent sent bytes to a broker it did not start');
  });

  for (const [what, length] of [
    ['a packet of 200 MiB', 200 * 1024 * 1024],
    ['a CONNECT of 100 KiB (under the packet cap)', 100 * 1024],
  ] as const) {
    it(`drops a client that announces ${what} before login, before it is sent whole`, async () => {
      subject = await startAgent({});
      const port = subject.agent.embeddedBroker!.port;
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      let closed = false;
      socket.once('close', () => (closed = true));
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      // A CONNECT header with its remaining length as a variable byte integer, then a little of it.
      const varint: number[] = [];
      for (let x = length; ;) {
        const byte = x % 128;
        x = Math.floor(x / 128);
        varint.push(x > 0 ? byte | 0x80 : byte);
        if (x === 0) break;
      }
      socket.write(Buffer.from([0x10, ...varint]));
      socket.write(Buffer.alloc(4096, 0x41));
      // Without the cap the broker waits for the rest until its CONNECT timeout (aedes: 30 s).
      await waitUntil(() => closed, 8000, 'the oversized client dropped');
      const probe = await MqttProbe.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4 });
      await probe.subscribe(`${subject.base}/#`);
      assert.equal((await probe.request(subject.base, 'ping', { id: 'still-here' })).ok, true);
      await probe.close();
    });
  }
});
