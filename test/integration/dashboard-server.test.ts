import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { startDashboard, type Dashboard } from '../../agent/fleet/dashboard/serve.js';
import { packageRoot } from '../../agent/core/package-root.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { DashboardClient } from '../helpers/dashboard-client.js';
import { cleanEngine } from '../helpers/engine-cli.js';
import { fakeFleet, fakeSummary, publishFleet } from '../helpers/fleet-robots.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { startMosquitto } from '../rig/mosquitto.js';
import { needRig, rig } from '../setup.js';
import '../helpers/test-events.js';

const READ = 'read-token-0123456789abcdef';
const OPERATOR = 'operator-token-0123456789abcdef';

describe('robot-fleet serve: the dashboard server against the rig broker', function () {
  this.timeout(120_000);
  const base = `dash-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  const fleet = fakeFleet(30);
  let agent: AgentUnderTest;
  let client: MqttClient;
  let dash: Dashboard;
  let clear: (() => Promise<void>) | undefined;
  const pages: DashboardClient[] = [];
  const page = async (token: string) => {
    const p = await DashboardClient.connect(dash.url, token);
    pages.push(p);
    return p;
  };

  before(async function () {
    needRig(this);
    cleanEngine();
    const r = rig();
    clear = await publishFleet(r.mqtt.url, base, fleet);
    agent = await startAgent({
      robot: { id: 'rosmaster-real' },
      mqtt: { url: r.mqtt.url, baseTopic: base },
      docker: { socketPath: r.docker.socketPath },
      registries: { 'docker.io': { mirror: r.registry.url } },
      devices: { sysfsRoot: join(tempDir(), 'none'), devRoot: join(tempDir(), 'none') },
      containers: { ros: { image: r.fixtures.images.v339, stopTimeout: 1 } },
    });
    await waitUntil(() => agent.agent.store.get().containers[0]?.state === 'running', 30_000, 'ros running');
    client = await mqtt.connectAsync(r.mqtt.url, { protocolVersion: 4 });
    dash = await startDashboard({
      base,
      client,
      host: '127.0.0.1',
      port: 0,
      tokens: { read: READ, operator: OPERATOR },
      timeoutMs: 15_000,
    });
  });

  after(async () => {
    for (const p of pages) p.close();
    await dash?.close();
    await client?.endAsync(true);
    await agent?.stop();
    await clear?.();
    if (rig()) cleanEngine();
  });

  it('refuses every page and socket without a valid token (401), and a socket from another site (403)', async () => {
    assert.equal((await fetch(dash.url)).status, 401);
    assert.equal((await fetch(`${dash.url}app.js`)).status, 401);
    assert.equal((await fetch(`${dash.url}login?token=wrong-token-0123456789`)).status, 401);
    assert.equal((await fetch(dash.url, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
    await assert.rejects(DashboardClient.connect(dash.url, null), { status: 401 });
    await assert.rejects(DashboardClient.connect(dash.url, 'wrong-token-0123456789'), { status: 401 });
    await assert.rejects(DashboardClient.connect(dash.url, READ, { origin: 'http://evil.example' }), { status: 403 });
    // The login sets an HttpOnly cookie; with it the page loads, with a policy that allows only its own scripts.
    const login = await fetch(`${dash.url}login?token=${READ}`, { redirect: 'manual' });
    assert.equal(login.status, 303);
    const cookie = login.headers.get('set-cookie')!;
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    // Over plain HTTP the cookie cannot be Secure (the browser would drop it); behind a TLS proxy
    // that says so, it is, so the token never travels over plain HTTP again.
    assert.doesNotMatch(cookie, /Secure/);
    const proxied = await fetch(`${dash.url}login?token=${READ}`, {
      redirect: 'manual',
      headers: { 'x-forwarded-proto': 'https' },
    });
    assert.match(proxied.headers.get('set-cookie')!, /; Secure/);
    const index = await fetch(dash.url, { headers: { cookie: cookie.split(';')[0]! } });
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-security-policy')!, /default-src 'self'/);
    assert.match(await index.text(), /<script type="module" src="app.js">/);
    assert.equal(
      (await fetch(`${dash.url}..%2Fpackage.json`, { headers: { authorization: `Bearer ${READ}` } })).status,
      404,
    );
  });

  it('replays every robot to a page that connects, then relays a change of one', async () => {
    const p = await page(READ);
    const hello = await p.next('hello');
    assert.equal(hello.role, 'read');
    const replayed = await p.next('replayed');
    const robots = p.robots();
    assert.equal(replayed.robots, fleet.length + 1);
    assert.equal(robots.size, fleet.length + 1);
    assert.equal(robots.get('rosmaster-x3-lab-0010')?.online, false);
    assert.equal(robots.get('rosmaster-real')?.state?.containers.list[0]?.name, 'ros');
    // One robot changes on the broker: the page hears of it.
    const from = p.messages.length;
    const changed = fakeSummary({ ...fleet[4]!, status: 'error' });
    await client.publishAsync(`${base}/${fleet[4]!.robot}/state`, JSON.stringify(changed), { qos: 1, retain: true });
    const relayed = await p.next(
      'robots',
      (m) => m.robots.some((r) => r.robot === fleet[4]!.robot && r.state?.status === 'error'),
      5000,
      from,
    );
    assert.equal(relayed.replay, undefined);
  });

  it("a robot page gets the robot's sections and its live events", async () => {
    const p = await page(READ);
    await p.next('replayed');
    p.send({ t: 'watch', robot: 'rosmaster-real' });
    await waitUntil(
      () => {
        const got: Record<string, unknown> = {};
        for (const m of p.messages)
          if (m.t === 'sections' && m.robot === 'rosmaster-real') Object.assign(got, m.sections);
        return ['devices', 'containers', 'images', 'update', 'snapshots'].every((s) => got[s] !== undefined);
      },
      10_000,
      'the sections of rosmaster-real',
    );
    agent.agent.bus.emit('test.marker', { note: 'for the page' });
    await p.next('events', (m) => m.robot === 'rosmaster-real' && m.events.some((e) => e.type === 'test.marker'));
  });

  it('a read-only page cannot act: refused with forbidden, and nothing reaches a robot', async () => {
    const spy = await mqtt.connectAsync(rig().mqtt.url, { protocolVersion: 4 });
    const requests: string[] = [];
    spy.on('message', (topic) => requests.push(topic));
    await spy.subscribeAsync(`${base}/+/request/#`, { qos: 1 });
    try {
      const p = await page(READ);
      await p.next('replayed');
      p.send({ t: 'act', id: 'ro-1', command: 'restart', robots: ['rosmaster-real'], args: { name: 'ros' } });
      const refused = await p.next('error', (m) => m.ref === 'ro-1');
      assert.equal(refused.code, 'forbidden');
      // A ping through the same broker after it proves the refused request would have arrived by now.
      await spy.publishAsync(`${base}/rosmaster-real/request/ping`, JSON.stringify({ id: 'after' }), { qos: 1 });
      await waitUntil(() => requests.length > 0, 5000, 'the ping');
      assert.deepEqual(requests, [`${base}/rosmaster-real/request/ping`]);
    } finally {
      await spy.endAsync(true);
    }
  });

  it("an operator's action reaches the real agent and its answer comes back; a refused one shows the robot's code", async () => {
    const p = await page(OPERATOR);
    assert.equal((await p.next('hello')).role, 'operator');
    await p.next('replayed');
    const before = agent.agent.store.get().containers[0]!.startedAt;
    p.send({ t: 'act', id: 'restart-1', command: 'restart', robots: ['rosmaster-real'], args: { name: 'ros' } });
    await p.next('action', (m) => m.action === 'restart-1' && m.phase === 'sent');
    const done = await p.next('action', (m) => m.action === 'restart-1' && m.phase === 'done', 60_000);
    assert.equal(done.ok, true, JSON.stringify(done.error));
    assert.notEqual(agent.agent.store.get().containers[0]!.startedAt, before);
    // The robot's config allows only its own images: its refusal and code come back as they are.
    p.send({
      t: 'act',
      id: 'evil-1',
      command: 'update',
      robots: ['rosmaster-real'],
      args: { container: 'ros', image: 'evil/miner:1' },
    });
    const refused = await p.next('action', (m) => m.action === 'evil-1' && m.phase === 'done', 30_000);
    assert.equal(refused.ok, false);
    assert.equal(refused.error?.code, 'not_allowed');
    assert.match(refused.error!.message, /evil\/miner:1 is not allowed on this robot/);
    // Bad requests are refused by the dashboard before anything is sent.
    p.send({ t: 'act', id: 'bad-1', command: 'update', robots: ['rosmaster-real'], args: { container: 'ros' } });
    assert.equal((await p.next('error', (m) => m.ref === 'bad-1')).code, 'invalid_action');
    p.send({ t: 'act', id: 'bad-2', command: 'prune' as never, robots: ['rosmaster-real'], args: {} });
    assert.equal((await p.next('error', (m) => m.ref === 'bad-2')).code, 'invalid_action');
  });

  it('with a broker account (MQTT 5), requests name a reply topic under fleet-replies/<account>/ and the answer comes there', async () => {
    const spy = await mqtt.connectAsync(rig().mqtt.url, { protocolVersion: 5 });
    const replies: string[] = [];
    spy.on('message', (topic) => replies.push(topic));
    await spy.subscribeAsync('fleet-replies/alice/#', { qos: 1 });
    const v5 = await mqtt.connectAsync(rig().mqtt.url, { protocolVersion: 5 });
    const alice = await startDashboard({
      base,
      client: v5,
      replyUser: 'alice',
      host: '127.0.0.1',
      port: 0,
      tokens: { read: READ, operator: OPERATOR },
      timeoutMs: 15_000,
    });
    try {
      const p = await DashboardClient.connect(alice.url, OPERATOR);
      pages.push(p);
      await p.next('replayed');
      p.send({ t: 'act', id: 'v5-1', command: 'start', robots: ['rosmaster-real'], args: { name: 'ros' } });
      const done = await p.next('action', (m) => m.action === 'v5-1' && m.phase === 'done', 30_000);
      assert.equal(done.ok, true, JSON.stringify(done.error));
      await waitUntil(
        () => replies.includes('fleet-replies/alice/rosmaster-real/start'),
        5000,
        'the reply on the account topic',
      );
    } finally {
      await alice.close();
      await v5.endAsync(true);
      await spy.endAsync(true);
    }
  });

  it('outlives a broker restart: reconnects with backoff, subscribes again, relays what comes after', async () => {
    const broker = await startMosquitto(tempDir('rfa-dash-mq-'));
    const own = await mqtt.connectAsync(broker.url, { protocolVersion: 4, reconnectPeriod: 0 });
    const said: string[] = [];
    const d = await startDashboard({
      base,
      client: own,
      host: '127.0.0.1',
      port: 0,
      tokens: { read: READ, operator: OPERATOR },
      timeoutMs: 15_000,
      log: (line) => said.push(line),
    });
    try {
      const p = await DashboardClient.connect(d.url, READ);
      pages.push(p);
      await p.next('replayed');
      await broker.stop();
      await waitUntil(() => said.some((l) => /lost the fleet broker/.test(l)), 10_000, 'the loss said');
      await broker.start();
      await waitUntil(() => said.some((l) => /is back/.test(l)), 20_000, 'the reconnect');
      // The restarted broker lost its retained messages: a robot that publishes after it is relayed.
      const robot = { ...fleet[0]!, robot: 'after-restart' };
      const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
      try {
        await waitUntil(
          async () => {
            await publisher.publishAsync(`${base}/after-restart/state`, JSON.stringify(fakeSummary(robot)), {
              qos: 1,
              retain: true,
            });
            return p.robots().has('after-restart');
          },
          10_000,
          'the robot published after the restart',
          500,
        );
      } finally {
        await publisher.endAsync(true);
      }
    } finally {
      await d.close();
      await own.endAsync(true);
      await broker.stop();
    }
  });

  it('an oversized message closes the socket (1009)', async () => {
    const p = await page(READ);
    await p.next('replayed');
    p.ws.send('x'.repeat(300 * 1024));
    await waitUntil(() => p.closed, 5000, 'the close');
    assert.equal(p.closed!.code, 1009);
  });

  it('robot-fleet serve makes the two tokens at first start, prints them once, keeps them 0600', async () => {
    const dir = tempDir('rfa-dash-');
    const run = () => {
      const child = spawn(
        process.execPath,
        [
          join(packageRoot(), 'build/agent/fleet/main.js'),
          '--broker',
          rig().mqtt.url,
          '--base',
          base,
          '--state-dir',
          dir,
          'serve',
          '--listen',
          '127.0.0.1:0',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      return { child, out: () => out, exit: new Promise<number | null>((resolve) => child.on('exit', resolve)) };
    };
    const first = run();
    await waitUntil(
      () => /operator:/.test(first.out()) && /printed only this once/.test(first.out()),
      20_000,
      'the tokens',
    );
    const url = /dashboard on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(first.out())![1]!;
    const token = /operator: +\S+login\?token=(\S+)/.exec(first.out())![1]!;
    assert.equal(statSync(join(dir, 'dashboard-operator.token')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'dashboard-read.token')).mode & 0o777, 0o600);
    const p = await DashboardClient.connect(url, token);
    pages.push(p);
    assert.equal((await p.next('hello')).role, 'operator');
    first.child.kill('SIGTERM');
    assert.equal(await first.exit, 0);
    const second = run();
    await waitUntil(() => /dashboard on/.test(second.out()), 20_000, 'the second start');
    assert.doesNotMatch(second.out(), /token=[A-Za-z0-9_-]{20}/);
    second.child.kill('SIGTERM');
    assert.equal(await second.exit, 0);
  });
});
