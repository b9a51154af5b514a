import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { packageRoot } from '../../agent/core/package-root.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { DashboardClient } from '../helpers/dashboard-client.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { startDaemon, type Daemon } from '../rig/daemon.js';
import { freePort, tcpOpen } from '../rig/net.js';
import { needRig, rig } from '../setup.js';

/**
 * The broker kit of deploy/broker/ as an administrator uses it: setup.sh, add-robot.sh and
 * add-operator.sh against a real mosquitto 2.0 started from the configuration they install, with
 * real agents as robots. Proves the ACL (a robot keeps to its own topics), the refusal of
 * anonymous clients, an operator driving every robot, and robot-fleet over mutual TLS.
 */

const kit = join(packageRoot(), 'deploy', 'broker');
const OPERATOR = 'alice';
const A = 'rosmaster-a';
const B = 'rosmaster-b';
const C = 'rosmaster-c';
/** Not authorized, the MQTT 5 reason code mosquitto answers a denied publish with. */
const NOT_AUTHORIZED = 135;

interface Script {
  code: number;
  stdout: string;
  stderr: string;
}

function script(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<Script> {
  return new Promise((resolve) => {
    execFile('bash', [join(kit, name), ...args], { env: { PATH: process.env.PATH, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

interface Run {
  code: Promise<number>;
  out: () => string;
}

/** robot-fleet as an operator runs it. */
function fleet(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const main = join(packageRoot(), 'build/agent/fleet/main.js');
  const child = spawn(process.execPath, [main, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, ...env },
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  return { code: new Promise((resolve) => child.on('exit', (c) => resolve(c ?? -1))), out: () => out };
}

/** A mosquitto as Debian runs it: its main file (pid, persistence, log) including the kit's conf.d. */
async function startBroker(dir: string, confDir: string, port: number): Promise<{ daemon: Daemon; pidFile: string }> {
  const pidFile = join(dir, `mosquitto-${port}.pid`);
  const main = join(dir, `mosquitto-${port}.conf`);
  writeFileSync(
    main,
    [
      // As root, mosquitto would otherwise drop to user "mosquitto" and lose our temp files.
      'user root',
      `pid_file ${pidFile}`,
      'persistence false',
      'log_dest stdout',
      'log_type all',
      `include_dir ${confDir}`,
      '',
    ].join('\n'),
  );
  const daemon = await startDaemon({
    name: 'fleet mosquitto',
    cmd: 'mosquitto',
    args: ['-c', main],
    logFile: join(dir, `mosquitto-${port}.log`),
    ready: () => tcpOpen(port),
  });
  return { daemon, pidFile };
}

/** An MQTT 5 client logged in as someone; rejects as mosquitto refuses the login. */
function login(url: string, options: IClientOptions): Promise<MqttClient> {
  return mqtt.connectAsync(url, {
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    clientId: `fleet-broker-test-${Math.random().toString(16).slice(2)}`,
    ca: readFileSync(rig().mqtt.certs.ca),
    rejectUnauthorized: true,
    ...options,
  });
}

/** The MQTT 5 reason code of a QoS 1 publish: 0 accepted, 135 refused by the ACL. */
async function publishCode(client: MqttClient, topic: string, payload = 'x', retain = false): Promise<number> {
  try {
    await client.publishAsync(topic, payload, { qos: 1, retain });
    return 0;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number') return code;
    throw err;
  }
}

describe('the fleet broker kit (deploy/broker): accounts, ACL, TLS', function () {
  this.timeout(120_000);
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let url: string;
  let mtlsUrl: string;
  const brokers: Daemon[] = [];
  const agents: AgentUnderTest[] = [];
  const clients: MqttClient[] = [];
  const secret = (name: string) => join(dir, `${name}.mqtt-password`);
  const password = (name: string) => readFileSync(secret(name), 'utf8').trim();
  const operatorArgs = () => [
    '--broker',
    url,
    '--ca',
    rig().mqtt.certs.ca,
    '--username',
    OPERATOR,
    '--password-file',
    secret(OPERATOR),
  ];

  const robot = async (id: string, brokerUrl: string, tls: Record<string, string> = {}) => {
    const empty = join(dir, 'no-devices');
    const agent = await startAgent({
      robot: { id },
      mqtt: { url: brokerUrl, ca: rig().mqtt.certs.ca, username: id, passwordFile: secret(id), ...tls },
      devices: { sysfsRoot: empty, devRoot: empty },
    });
    agents.push(agent);
    await waitUntil(() => agent.agent.store.get().agent.mqtt.connected, 15_000, `${id} connected to the fleet broker`);
    return agent;
  };

  before(async function () {
    const r = needRig(this);
    dir = tempDir('rfa-fleet-broker-');
    mkdirSync(join(dir, 'no-devices'));
    const [port, mtlsPort] = [await freePort(), await freePort()];
    url = `mqtts://127.0.0.1:${port}`;
    mtlsUrl = `mqtts://127.0.0.1:${mtlsPort}`;
    env = {
      FLEET_BROKER_DIR: join(dir, 'kit'),
      FLEET_BROKER_PIDFILE: join(dir, `mosquitto-${port}.pid`),
      FLEET_SYSTEMD_DIR: join(dir, 'no-systemd'),
      FLEET_BROKER_URL: url,
    };
    const certs = ['--ca', r.mqtt.certs.ca, '--cert', r.mqtt.certs.serverCert, '--key', r.mqtt.certs.serverKey];
    const listen = (p: number) => ['--port', String(p), '--bind', '127.0.0.1'];
    const setup = await script('setup.sh', [...certs, ...listen(port), '--conf-dir', join(dir, 'conf.d')], env);
    assert.equal(setup.code, 0, setup.stderr);
    // The same accounts behind a second listener that also requires a client certificate.
    const mtlsArgs = [...listen(mtlsPort), '--mutual-tls', '--conf-dir', join(dir, 'conf-mtls.d')];
    const setupMtls = await script('setup.sh', mtlsArgs, env);
    assert.equal(setupMtls.code, 0, setupMtls.stderr);
    assert.match(setupMtls.stdout, /kept .*acl/);
    brokers.push((await startBroker(dir, join(dir, 'conf.d'), port)).daemon);

    // Accounts added while the broker runs: the scripts reload it.
    for (const id of [A, B, C]) {
      const added = await script('add-robot.sh', ['--out', secret(id), id], env);
      assert.equal(added.code, 0, added.stderr);
      assert.match(added.stdout, new RegExp(`username: ${id}\\n\\s+passwordFile: /etc/robot-agent/mqtt.password`));
      assert.match(added.stdout, /broker reloaded/);
    }
    const op = await script('add-operator.sh', ['--out', secret(OPERATOR), OPERATOR], env);
    assert.equal(op.code, 0, op.stderr);
    // The reload is asynchronous: the accounts are in once the last one can log in.
    await waitUntil(
      () => login(url, { username: OPERATOR, password: password(OPERATOR) }).then((c) => c.endAsync().then(() => true)),
      10_000,
      'the broker to take the new accounts',
      200,
    );
    brokers.push((await startBroker(dir, join(dir, 'conf-mtls.d'), mtlsPort)).daemon);
    await robot(A, url);
    await robot(B, url);
    await robot(C, mtlsUrl, { cert: r.mqtt.certs.clientCert, key: r.mqtt.certs.clientKey });
  });

  after(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    for (const a of agents) await a.stop();
    for (const b of brokers) await b.stop();
  });

  const as = async (name: string, target = url): Promise<MqttClient> => {
    const client = await login(target, { username: name, password: password(name) });
    clients.push(client);
    return client;
  };

  it('writes each password once, readable by its owner only, and refuses to add an account twice', async () => {
    for (const name of [A, B, C, OPERATOR]) {
      assert.equal(statSync(secret(name)).mode & 0o777, 0o600, `${name}'s password file`);
      assert.match(readFileSync(secret(name), 'utf8'), /^[A-Za-z0-9]{32}\n$/);
    }
    const again = await script('add-robot.sh', ['--out', join(dir, 'again'), A], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already has an account: --rotate/);
    const clash = await script('add-operator.sh', ['--out', join(dir, 'clash'), B], env);
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /robot's account/);
    const bad = await script('add-robot.sh', ['fleet/#'], env);
    assert.equal(bad.code, 2);
    // Nothing of a password may reach a command line (ps): mosquitto_passwd gets it on stdin.
    const scripts = ['lib.sh', 'add-robot.sh', 'add-operator.sh'].map((f) => readFileSync(join(kit, f), 'utf8'));

    assert.doesNotMatch(scripts.join('\n'), /mosquitto_passwd\s+-b/);
  });

  it('refuses anonymous clients and wrong passwords', async () => {
    await assert.rejects(login(url, {}), (err: { code?: unknown }) => err.code === NOT_AUTHORIZED || err.code === 5);
    // 134: bad user name or password.
    const refused = (err: { code?: unknown }) => err.code === NOT_AUTHORIZED || err.code === 134;
    await assert.rejects(login(url, { username: A, password: 'not-the-password' }), refused);
    // A robot's password is its own: B's does not log in as A.
    await assert.rejects(login(url, { username: A, password: password(B) }));
  });

  it("robot A cannot publish on B's topics, only on its own", async () => {
    const a = await as(A);
    for (const topic of ['availability', 'state', 'state/host', 'events', 'response/ping', 'desired', 'request/ping']) {
      const code = await publishCode(a, `fleet/${B}/${topic}`, 'forged');
      assert.equal(code, NOT_AUTHORIZED, `A publishing fleet/${B}/${topic}`);
    }
    // Nor its own requests or desired state: only the fleet sends those.
    assert.equal(await publishCode(a, `fleet/${A}/request/stop`, '{"id":"x","name":"ros"}'), NOT_AUTHORIZED);
    assert.equal(await publishCode(a, `fleet/${A}/desired`, '{}'), NOT_AUTHORIZED);
    // An MQTT 5 reply as if it came from B.
    assert.equal(await publishCode(a, `fleet-replies/${OPERATOR}/${B}/1`, 'forged'), NOT_AUTHORIZED);
    for (const topic of ['events', 'state/host', 'response/ping']) {
      assert.equal(await publishCode(a, `fleet/${A}/${topic}`, '{}'), 0, `A publishing fleet/${A}/${topic}`);
    }
    // B's retained state is still B's own.
    const ca = readFileSync(rig().mqtt.certs.ca);
    const operator = await MqttProbe.connect(url, { username: OPERATOR, password: password(OPERATOR), ca });
    try {
      await operator.subscribe(`fleet/${B}/state`);
      const state = await operator.waitForTopic(`fleet/${B}/state`, 5000);
      assert.equal((JSON.parse(state.text) as { robot: string }).robot, B);
    } finally {
      await operator.close();
    }
  });

  it("robot A cannot read B's requests nor B's desired state", async () => {
    const a = await as(A);
    const seen: string[] = [];
    a.on('message', (topic) => seen.push(topic));
    await a.subscribeAsync([`fleet/+/request/#`, `fleet/+/desired`, 'fleet/#'], { qos: 1 });
    const operator = await as(OPERATOR);
    // In this order: B's request and desired state, then A's request as the marker. A broker
    // delivers one publisher's messages in order, so anything of B's would arrive before it.
    assert.equal(await publishCode(operator, `fleet/${B}/desired`, '{"containers":{}}', true), 0);
    assert.equal(await publishCode(operator, `fleet/${B}/request/ping`, '{"id":"for-b"}'), 0);
    assert.equal(await publishCode(operator, `fleet/${A}/request/ping`, '{"id":"for-a"}'), 0);
    await waitUntil(() => seen.includes(`fleet/${A}/request/ping`), 5000, "A's own request to reach it");
    assert.deepEqual(
      seen.filter((t) => t.startsWith(`fleet/${B}/`)),
      [],
      'A received nothing of B',
    );
    assert.deepEqual(
      seen.filter((t) => !t.startsWith(`fleet/${A}/`)),
      [],
    );
    // A new subscription gets no retained message of B's either.
    const late = await as(A);
    const lateSeen: string[] = [];
    late.on('message', (topic) => lateSeen.push(topic));
    await late.subscribeAsync([`fleet/${B}/desired`, `fleet/${A}/desired`], { qos: 1 });
    assert.equal(await publishCode(operator, `fleet/${A}/desired`, '{"containers":{}}', true), 0);
    await waitUntil(() => lateSeen.includes(`fleet/${A}/desired`), 5000, "A's own desired state");
    assert.ok(!lateSeen.includes(`fleet/${B}/desired`));
  });

  it('an operator drives both robots with robot-fleet, and gets MQTT 5 replies on its own reply topic', async () => {
    for (const id of [A, B]) {
      const run = fleet([...operatorArgs(), '--timeout', '10', 'send', id, 'ping']);
      assert.equal(await run.code, 0, run.out());
      assert.match(run.out(), /"pong": true/);
    }
    // Whatever the list's layout, both robots are in it.
    const list = fleet([...operatorArgs(), '--timeout', '10', 'list']);
    assert.equal(await list.code, 0, list.out());
    for (const id of [A, B]) assert.match(list.out(), new RegExp(`^${id}\\s`, 'm'), `${id} listed`);
    // The reply-topic convention of docs/fleet-broker.md: fleet-replies/<operator>/<robot>/...
    const operator = await as(OPERATOR);
    const replies: Array<{ topic: string; payload: string; correlation: Buffer | undefined }> = [];
    operator.on('message', (topic, payload, packet) =>
      replies.push({ topic, payload: payload.toString(), correlation: packet.properties?.correlationData }),
    );
    await operator.subscribeAsync(`fleet-replies/${OPERATOR}/#`, { qos: 1 });
    for (const id of [A, B]) {
      const responseTopic = `fleet-replies/${OPERATOR}/${id}/1`;
      await operator.publishAsync(`fleet/${id}/request/ping`, JSON.stringify({ id: `rr-${id}` }), {
        qos: 1,
        properties: { responseTopic, correlationData: Buffer.from(`c-${id}`) },
      });
      const reply = await waitUntil(
        () => replies.find((m) => m.topic === responseTopic),
        5000,
        `${id}'s reply on ${responseTopic}`,
      );
      assert.equal((JSON.parse(reply.payload) as { ok: boolean }).ok, true);
      assert.equal(reply.correlation?.toString(), `c-${id}`);
    }
    // Another operator's replies are not alice's to read: nothing but her own arrived.
    assert.ok(replies.every((m) => m.topic.startsWith(`fleet-replies/${OPERATOR}/`)));
  });

  it('an operator cannot pose as a robot', async () => {
    const operator = await as(OPERATOR);
    assert.equal(await publishCode(operator, `fleet/${OPERATOR}/state`, '{}'), NOT_AUTHORIZED);
    assert.equal(await publishCode(operator, `fleet/${A}/state`, '{}'), NOT_AUTHORIZED);
  });

  it('robot-fleet with --cert/--key reaches a listener that requires client certificates', async () => {
    const c = rig().mqtt.certs;
    const base = [
      '--broker',
      mtlsUrl,
      '--ca',
      c.ca,
      '--username',
      OPERATOR,
      '--password-file',
      secret(OPERATOR),
      '--timeout',
      '10',
    ];
    const run = fleet([...base, '--cert', c.clientCert, '--key', c.clientKey, 'send', C, 'ping']);
    assert.equal(await run.code, 0, run.out());
    assert.match(run.out(), /"pong": true/);
    // The same from the environment, as an operator's shell profile would set it.
    const fromEnv = fleet(['--timeout', '10', 'send', C, 'ping'], {
      ROBOT_FLEET_BROKER: mtlsUrl,
      ROBOT_FLEET_CA: c.ca,
      ROBOT_FLEET_CERT: c.clientCert,
      ROBOT_FLEET_KEY: c.clientKey,
      ROBOT_FLEET_USERNAME: OPERATOR,
      ROBOT_FLEET_PASSWORD_FILE: secret(OPERATOR),
    });
    assert.equal(await fromEnv.code, 0, fromEnv.out());
    // Without the certificate the listener refuses the TLS handshake.
    const refused = fleet([...base, 'send', C, 'ping']);
    assert.equal(await refused.code, 3, refused.out());
    assert.match(refused.out(), /cannot reach the fleet broker/);
    // Half a client certificate, or TLS files with a plaintext URL, are usage errors.
    const half = fleet([...base, '--cert', c.clientCert, 'list']);
    assert.equal(await half.code, 2, half.out());
    assert.match(half.out(), /--cert and --key go together/);
    const plain = fleet(['--broker', 'mqtt://127.0.0.1:1', '--ca', c.ca, 'list']);
    assert.equal(await plain.code, 2, plain.out());
    assert.match(plain.out(), /need a TLS broker URL/);
    const missing = fleet([...base, '--cert', join(dir, 'nope.pem'), '--key', c.clientKey, 'list']);
    assert.equal(await missing.code, 2, missing.out());
    assert.match(missing.out(), /--cert: cannot read .*nope\.pem \(ENOENT\)/);
  });

  it('robot-fleet serve with an operator account over TLS: both robots on the page, an action answered through the ACL', async () => {
    const child = spawn(
      process.execPath,
      [
        join(packageRoot(), 'build/agent/fleet/main.js'),
        ...operatorArgs(),
        '--state-dir',
        join(dir, 'dashboard'),
        'serve',
        '--listen',
        '127.0.0.1:0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await waitUntil(() => /printed only this once/.test(out), 20_000, 'the dashboard');
      const page = await DashboardClient.connect(
        /dashboard on (\S+)/.exec(out)![1]!,
        /operator: +\S+token=(\S+)/.exec(out)![1]!,
      );
      try {
        await page.next('replayed');
        for (const id of [A, B]) assert.equal(page.robots().get(id)?.online, true, `${id} on the page`);
        // The robots have no container ros: each answers with its own error, through the broker's ACL.
        page.send({ t: 'act', id: 'acl-1', command: 'stop', robots: [A, B], args: { name: 'ros' } });
        for (const id of [A, B]) {
          const done = await page.next(
            'action',
            (m) => m.action === 'acl-1' && m.robot === id && m.phase === 'done',
            15_000,
          );
          assert.equal(done.error?.code, 'unknown_container', JSON.stringify(done));
        }
      } finally {
        page.close();
      }
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0, out);
    }
  });

  it('rotating a robot password cuts the old one off at once; the robot is back with the new file', async () => {
    const b = agents.find((a) => a.loaded.config.robot.id === B)!;
    const old = password(B);
    // Written where the robot's mqtt.passwordFile points, as an administrator would copy it.
    const r = await script('add-robot.sh', ['--rotate', '--out', secret(B), B], env);
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual(password(B), old);
    // mosquitto rechecks connected clients at the reload: B is dropped, and refused with the old password.
    await waitUntil(() => !b.agent.store.get().agent.mqtt.connected, 10_000, 'B dropped by the reload');
    await assert.rejects(login(url, { username: B, password: old }));
    // The agent reads its password file at start: restarted, it is back.
    await b.stop();
    await robot(B, url);
    const run = fleet([...operatorArgs(), '--timeout', '10', 'send', B, 'ping']);
    assert.equal(await run.code, 0, run.out());
  });
});
