import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { probeLidar } from '../../agent/devices/lidar-probe.js';
import { Command } from '../../agent/devices/lidar-protocol.js';
import { portHolders } from '../../agent/devices/port-holders.js';
import { LidarSimulator, type Behaviour } from '../helpers/lidar-simulator.js';
import { PortHolder } from '../helpers/port-holder.js';
import { waitUntil } from '../helpers/wait.js';

const A1M8 = {
  model: 24,
  modelName: 'A1M8',
  firmware: '1.29',
  hardware: 7,
  serial: '0123456789ABCDEF0011223344556677',
};

describe('lidar probe against the RPLidar A1 simulator on a pty', function () {
  this.timeout(10_000);
  let sim: LidarSimulator;

  beforeEach(async () => {
    sim = await LidarSimulator.start();
  });
  afterEach(async () => {
    await sim.stop();
  });

  const probe = (timeoutMs = 500) => probeLidar({ path: sim.ptyPath, baudRate: 115200, timeoutMs });

  it('reads identity and good health exactly as the lidar sent them, STOP first, and closes the port', async () => {
    const result = await probe();
    assert.deepEqual(result, { ok: true, info: A1M8, health: { status: 'good', errorCode: 0 } });
    assert.deepEqual(sim.commands, [Command.STOP, Command.GET_INFO, Command.GET_HEALTH]);
    assert.deepEqual(await portHolders(sim.ptyPath, { selfPid: -1 }), [], 'the port was left open');
  });

  it('reports warning and error with the error code', async () => {
    sim.health = { status: 1, errorCode: 0 };
    assert.deepEqual((await probe()) as unknown, { ok: true, info: A1M8, health: { status: 'warning', errorCode: 0 } });
    sim.health = { status: 2, errorCode: 0x8001 };
    assert.deepEqual((await probe()) as unknown, {
      ok: true,
      info: A1M8,
      health: { status: 'error', errorCode: 0x8001 },
    });
  });

  for (const behaviour of ['junk-first', 'stale-scan-first', 'banner-first'] as Behaviour[]) {
    it(`finds the answer after ${behaviour.replace(/-first$/, '').replace(/-/g, ' ')} bytes`, async () => {
      sim.behaviour = behaviour;
      const result = await probe();
      assert.ok(result.ok, JSON.stringify(result));
      assert.deepEqual(result.info, A1M8);
    });
  }

  it('stops a lidar left scanning before asking', async () => {
    sim.startScanning();
    const result = await probe();
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(sim.commands[0], Command.STOP);
  });

  it('waits for a slow answer within the timeout', async () => {
    sim.delayMs = 300;
    const result = await probe(1000);
    assert.ok(result.ok, JSON.stringify(result));
  });

  it('gives a mute lidar "no_answer" within the timeout, never a hang, and closes the port', async () => {
    sim.behaviour = 'mute';
    const t0 = Date.now();
    const result = await probe(400);
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.code, 'no_answer');
    assert.ok(Date.now() - t0 < 1500, `took ${Date.now() - t0} ms`);
    assert.deepEqual(await portHolders(sim.ptyPath, { selfPid: -1 }), []);
  });

  it('an answer slower than the timeout is no answer', async () => {
    sim.delayMs = 800;
    const result = await probe(300);
    assert.equal(!result.ok && result.code, 'no_answer');
  });

  it('a CP2102 that does not answer like a lidar is reported as not a lidar', async () => {
    sim.behaviour = 'not-a-lidar';
    const result = await probe(400);
    assert.equal(!result.ok && result.code, 'not_a_lidar');
    assert.match(!result.ok ? result.reason : '', /not a lidar/);
  });

  it('a lidar unplugged while answering ends the probe at once with the port closed', async () => {
    sim.behaviour = 'unplug-mid-answer';
    const t0 = Date.now();
    const result = await probe(2000);
    assert.equal(result.ok, false);
    assert.ok(!result.ok && ['port_closed', 'port_error'].includes(result.code), JSON.stringify(result));
    assert.ok(Date.now() - t0 < 1500, `took ${Date.now() - t0} ms`);
  });

  it('a port held by another process after the caller checked: busy, and not one byte written (19.7)', async () => {
    // The ROS driver opens the port between the agent's /proc check and the probe's open: the
    // probe checks again once open and before every write.
    const holder = await PortHolder.hold(sim.ptyPath);
    try {
      const holders = (p: string) => portHolders(p);
      const result = await probeLidar({ path: sim.ptyPath, baudRate: 115200, timeoutMs: 300, holders });
      assert.equal(!result.ok && result.code, 'busy', JSON.stringify(result));
      assert.deepEqual(!result.ok && result.code === 'busy' ? result.holders : [], [holder.pid]);
      assert.deepEqual(sim.commands, [], 'bytes were sent to a held port');
    } finally {
      await holder.release();
    }
    assert.deepEqual(await portHolders(sim.ptyPath, { selfPid: -1 }), [], 'the probe left the port open');
  });

  it('a port held after the first write: the next command is not sent', async () => {
    let checks = 0;
    let holder: PortHolder | undefined;
    // The driver starts right after STOP went out: GET_INFO must not follow.
    const holders = async (p: string) => {
      checks += 1;
      if (checks === 2) holder = await PortHolder.hold(p);
      return portHolders(p);
    };
    try {
      const result = await probeLidar({ path: sim.ptyPath, baudRate: 115200, timeoutMs: 300, holders });
      assert.equal(!result.ok && result.code, 'busy', JSON.stringify(result));
      await waitUntil(() => sim.commands.length >= 1, 2000, 'STOP at the simulator');
      assert.deepEqual(sim.commands, [Command.STOP]);
    } finally {
      await holder?.release();
    }
  });

  it('a port another process has flock()ed cannot be opened: busy, nothing written', async () => {
    const locker = spawn('flock', ['--exclusive', sim.ptyPath, '-c', 'echo locked; exec sleep 30'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      await new Promise<void>((resolve) => locker.stdout.on('data', (d: Buffer) => d.includes('locked') && resolve()));
      const result = await probeLidar({ path: sim.ptyPath, baudRate: 115200, timeoutMs: 300 });
      assert.equal(!result.ok && result.code, 'busy', JSON.stringify(result));
      assert.deepEqual(sim.commands, []);
    } finally {
      locker.kill('SIGKILL');
    }
  });

  it("the serial binding in use is serialport's prebuild for this CPU (linux-arm64 under scripts/test-arm64.sh)", async () => {
    await probe();
    // What the process has dlopen()ed: the proof that the probes above ran through this binding.
    const report = process.report.getReport() as unknown as { sharedObjects: string[] };
    const bindings = report.sharedObjects.filter((so) => so.includes('@serialport') && so.endsWith('.node'));
    const dir = { arm64: 'linux-arm64', x64: 'linux-x64' }[process.arch as string] ?? `linux-${process.arch}`;
    assert.equal(bindings.length, 1, bindings.join(', '));
    assert.match(bindings[0]!, new RegExp(`/prebuilds/${dir}/`));
  });

  it('a path that is not there is a port error, not a throw', async () => {
    const result = await probeLidar({ path: '/dev/does-not-exist-rplidar', baudRate: 115200, timeoutMs: 200 });
    assert.equal(!result.ok && result.code, 'port_error');
  });
});
