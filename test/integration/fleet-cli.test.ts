import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { packageRoot } from '../../agent/core/package-root.js';
import type { RobotView } from '../../agent/fleet/fleet-view.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { cleanEngine } from '../helpers/engine-cli.js';
import { STATE_SECTIONS } from '../../agent/mqtt/state-publisher.js';
import { Contract } from '../helpers/contract.js';
import { FakeUsbBus, X3 } from '../helpers/fake-sysfs.js';
import { LidarSimulator } from '../helpers/lidar-simulator.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig, rig } from '../setup.js';

interface Run {
  code: Promise<number>;
  stdout: () => string;
  stderr: () => string;
  kill: () => void;
}

/** The CLI as an operator runs it. */
function fleet(args: string[]): Run {
  const child = spawn(process.execPath, [join(packageRoot(), 'build/agent/fleet/main.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  return {
    code: new Promise((resolve) => child.on('exit', (c) => resolve(c ?? -1))),
    stdout: () => out,
    stderr: () => err,
    kill: () => child.kill('SIGTERM'),
  };
}

describe('robot-fleet: two robots on one broker', function () {
  this.timeout(90_000);
  const base = `fleet-cli-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  let x3: AgentUnderTest;
  let bare: AgentUnderTest;
  let bus: FakeUsbBus;
  let sim: LidarSimulator;
  const common = () => ['--broker', rig().mqtt.url, '--base', base];

  before(async function () {
    needRig(this);
    cleanEngine();
    const r = rig();
    bus = new FakeUsbBus(tempDir('rfa-usb-'));
    sim = await LidarSimulator.start();
    bus.plug(X3.lidar({ ttyTarget: sim.ptyPath }));
    bus.plug(X3.board());
    bus.plug(X3.cameraDepth());
    bus.plug(X3.cameraRgb());
    x3 = await startAgent({
      robot: { id: 'rosmaster-01' },
      mqtt: { url: r.mqtt.url, baseTopic: base },
      docker: { socketPath: r.docker.socketPath },
      registries: { 'docker.io': { mirror: r.registry.url } },
      devices: { sysfsRoot: bus.sysfsRoot, devRoot: bus.devRoot, pollInterval: 100, lidar: { timeout: 300 } },
      containers: {
        ros: {
          image: r.fixtures.images.v339,
          devices: ['lidar', 'camera', 'board'],
          deviceMajors: [188, 189, 81, 136],
          stopTimeout: 1,
        },
      },
    });
    bare = await startAgent({
      robot: { id: 'rosmaster-02' },
      mqtt: { url: r.mqtt.url, baseTopic: base },
      devices: { sysfsRoot: join(bus.root, 'none'), devRoot: join(bus.root, 'none') },
    });
    await waitUntil(
      () =>
        x3.agent.store.get().containers[0]?.state === 'running' &&
        x3.agent.store.get().devices.lidar.health.status === 'good',
      30_000,
      'rosmaster-01 running ros with a good lidar',
    );
    await waitUntil(() => bare.agent.store.get().agent.mqtt.connected, 10_000, 'rosmaster-02 connected');
    // Let the state with the container reach the broker.
    await new Promise((r) => setTimeout(r, 1500));
  });

  after(async () => {
    await x3?.stop();
    await bare?.stop();
    await sim?.stop();
    if (rig()) cleanEngine();
  });

  it('list shows both robots with their devices, containers and images', async () => {
    const run = fleet([...common(), 'list']);
    assert.equal(await run.code, 0, run.stderr());
    const lines = run.stdout().trim().split('\n');
    // Columns are two spaces apart at least; some cells hold one.
    const [header, x3, bare] = lines.map((l) => l.split(/ {2,}/));
    const columns = ['ROBOT', 'ONLINE', 'STATUS', 'LIDAR', 'CAMERA', 'BOARD', 'CONTAINERS', 'UPDATE', 'DISK FREE'];
    columns.push('LAST SEEN', 'WHY');
    assert.deepEqual(header, columns);
    assert.deepEqual(x3!.slice(0, 8), ['rosmaster-01', 'online', 'ok', 'good', 'ok', 'ok', 'ros:running', 'idle']);
    assert.match(x3!.slice(8).join('|'), /^\d+\.\d GB\|\d+s ago$/);
    const absent = ['ABSENT', 'ABSENT', 'ABSENT'];
    assert.deepEqual(bare!.slice(0, 8), ['rosmaster-02', 'online', 'ERROR', ...absent, 'NO DOCKER', 'idle']);
    assert.match(bare!.slice(8, 10).join('|'), /^\d+\.\d GB\|\d+s ago$/);
    assert.equal(bare![10], 'Docker unavailable (docker_unreachable); lidar absent; camera absent; board absent');
    // The totals close the table: both live, the bare robot in error.
    assert.equal(lines.at(-1), '2 robots: 2 online, 0 offline; 1 error, 0 degraded, 0 updating, 0 outdated');
    assert.equal(lines.length, 4);
    const json = fleet([...common(), 'list', '--json']);
    assert.equal(await json.code, 0);
    const robots = JSON.parse(json.stdout()) as RobotView[];
    assert.deepEqual(robots.map((r) => [r.robot, r.online]).sort(), [
      ['rosmaster-01', true],
      ['rosmaster-02', true],
    ]);
    // list reads the summaries only: what a fleet of thousands can afford.
    for (const r of robots) new Contract().assert('state-summary.json', r.state);
    const listed = robots.find((r) => r.robot === 'rosmaster-01')!.state!.containers.list;
    assert.deepEqual(
      listed.map((c) => [c.name, c.outdated]),
      [['ros', false]],
    );
  });

  it('status shows one robot in detail from its retained sections', async () => {
    const run = fleet([...common(), 'status', 'rosmaster-01']);
    assert.equal(await run.code, 0, run.stderr());
    const text = run.stdout();
    assert.match(text, /^rosmaster-01 {2}online {2}ok {2}seen \d+s ago, changed \d+[sm] ago$/m);
    assert.match(text, /^ {2}docker {6}20\.10\.\S+ \(API 1\.41\)$/m);
    assert.match(text, /^ {2}devices {5}lidar good A1M8 fw 1\.29 at \S+rplidar; camera ok; board ok at \S+myserial$/m);
    assert.match(text, /^ {2}container {3}ros running \S+ros-foxy:3\.3\.9, in sync, restarts 0$/m);
    assert.match(text, /^ {2}host {8}cpu /m);
    const json = fleet([...common(), 'status', 'rosmaster-01', '--json']);
    assert.equal(await json.code, 0);
    const detail = JSON.parse(json.stdout()) as { sections: Record<string, unknown> };
    const contract = new Contract();
    for (const [section, value] of Object.entries(detail.sections)) {
      contract.assert(`state.json#/properties/${section}`, value);
    }
    assert.deepEqual(Object.keys(detail.sections).sort(), [...STATE_SECTIONS].sort());
    const ghost = fleet([...common(), '--timeout', '2', 'status', 'rosmaster-99']);
    assert.equal(await ghost.code, 3);
    assert.match(ghost.stdout(), /nothing retained for rosmaster-99/);
  });

  it('send prints the response and exits by its ok; shortcuts; no answer and bad usage get their codes', async () => {
    const ping = fleet([...common(), 'send', 'rosmaster-02', 'ping']);
    assert.equal(await ping.code, 0);
    assert.equal(JSON.parse(ping.stdout()).result.pong, true);
    const refused = fleet([
      ...common(),
      'send',
      'rosmaster-01',
      'update',
      '{"container":"ros","image":"evil/miner:1"}',
    ]);
    assert.equal(await refused.code, 1);
    assert.equal(JSON.parse(refused.stdout()).error.code, 'not_allowed');
    const snap = fleet([...common(), 'snapshot', 'rosmaster-01', 'nope']);
    assert.equal(await snap.code, 1);
    assert.equal(JSON.parse(snap.stdout()).error.code, 'unknown_container');
    const ghost = fleet([...common(), '--timeout', '1', 'send', 'rosmaster-99', 'ping']);
    assert.equal(await ghost.code, 3);
    assert.match(ghost.stdout(), /no answer from rosmaster-99/);
    assert.equal(await fleet([...common(), 'send', 'rosmaster-01']).code, 2);
    assert.equal(await fleet([...common(), 'send', 'rosmaster-01', 'ping', '[1]']).code, 2);
    const noBroker = fleet(['--broker', 'mqtt://127.0.0.1:1', '--timeout', '2', 'list']);
    assert.equal(await noBroker.code, 3);
    assert.match(noBroker.stderr(), /cannot reach the fleet broker/);
  });

  it('watch shows the fleet as it is, then streams the events of the fleet as they happen', async () => {
    const run = fleet([...common(), 'watch']);
    try {
      // Subscribed once a marker event published on the fleet broker shows up in its stream (a fixed
      // sleep lost the replug when the CLI started slowly on a loaded machine).
      const marker = await mqtt.connectAsync(rig().mqtt.url, { protocolVersion: 4 });
      try {
        await waitUntil(
          async () => {
            await marker.publishAsync(
              `${base}/marker-robot/events`,
              JSON.stringify({ type: 'test.marker', ts: new Date().toISOString() }),
            );
            await new Promise((r) => setTimeout(r, 100));
            return /marker-robot test\.marker/.test(run.stdout());
          },
          20_000,
          'robot-fleet watch subscribed',
        );
      } finally {
        await marker.endAsync();
      }
      // The fleet as it is came first (issue 18.2: a blank screen until the first event), then the events.
      const shown = run.stdout();
      const header = shown.indexOf('-- events from now on');
      assert.ok(header > 0, shown);
      assert.match(shown.slice(0, header), /^ROBOT/m);
      assert.match(shown.slice(0, header), /rosmaster-01 .*\n(.*\n)*rosmaster-02 /);
      assert.ok(shown.indexOf('marker-robot test.marker') > header, shown);
      bus.replug('1-1.4', { devnum: 31 });
      await waitUntil(
        () => /rosmaster-01 device\.changed device=camera/.test(run.stdout()),
        5000,
        'the replug in the stream',
      );
      await waitUntil(
        () => /rosmaster-01 container\.devices name=ros/.test(run.stdout()),
        5000,
        'the live replug in the stream',
      );
    } finally {
      run.kill();
    }
    assert.equal(await run.code, 0);
  });
});

describe('robot-fleet on the robot, against the embedded broker', function () {
  this.timeout(60_000);
  let robot: AgentUnderTest | undefined;

  after(async () => {
    await robot?.stop();
  });

  it('reads the embedded broker password from --state-dir (user robot-agent); without it the broker refuses', async () => {
    robot = await startAgent({});
    const r = robot;
    await waitUntil(() => r.agent.store.get().agent.mqtt.connected, 10_000, 'the agent connected to its own broker');
    const broker = ['--broker', `mqtt://127.0.0.1:${r.agent.embeddedBroker!.port}`, '--timeout', '5'];
    const ping = fleet([...broker, '--state-dir', r.loaded.config.state.dir, 'send', r.loaded.config.robot.id, 'ping']);
    assert.equal(await ping.code, 0, ping.stderr());
    assert.equal(JSON.parse(ping.stdout()).result.pong, true);
    const elsewhere = fleet([
      ...broker,
      '--state-dir',
      join(tempDir(), 'none'),
      'send',
      r.loaded.config.robot.id,
      'ping',
    ]);
    assert.equal(await elsewhere.code, 3);
    assert.match(elsewhere.stderr(), /cannot reach the fleet broker.*(Bad username or password|Not authorized)/i);
  });
});
