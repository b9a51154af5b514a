import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { createLogger } from '../../agent/core/logger.js';
import { summarise } from '../../agent/mqtt/summary.js';
import { SimFleet, simRobotId } from '../../bench/fleet-sim-fleet.js';
import { FleetObserver } from '../../bench/fleet-sim-observer.js';
import { Contract } from '../helpers/contract.js';
import { needRig, rig } from '../setup.js';

const N = 300;

/**
 * The fleet simulator of bench/fleet-sim.ts, small: 300 robots that each run the agent's own
 * link and publishers, on the rig's broker. Nothing may be lost on the way to a dashboard.
 */
describe('fleet simulator: 300 robots on one broker', function () {
  this.timeout(60_000);
  const base = `fleetsim-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  const warnings: string[] = [];
  let fleet: SimFleet;
  let early: FleetObserver;

  before(async function () {
    needRig(this);
    // Subscribed before the first robot: it knows when every robot's retained state is on the broker.
    early = await FleetObserver.connect(rig().mqtt.url, base);
    fleet = new SimFleet({
      url: rig().mqtt.url,
      baseTopic: base,
      first: 0,
      count: N,
      rampPerSecond: 600,
      heartbeatMs: 60_000,
      replugsPerHour: 0,
      logger: createLogger({ level: 'warn', write: (line) => warnings.push(line) }),
    });
    await fleet.start();
    await early.waitForComplete(N, 30_000);
  });

  after(async () => {
    await fleet?.stop();
    await early?.close();
  });

  it('a new subscriber gets every summary and availability, as the agent builds them and as documented', async () => {
    const contract = new Contract();
    const fresh = await FleetObserver.connect(rig().mqtt.url, base);
    try {
      await fresh.waitForComplete(N, 20_000);
      assert.equal(fresh.robots.size, N);
      assert.equal(fresh.unreadable, 0);
      for (let i = 0; i < N; i += 1) {
        const id = simRobotId(i);
        const seen = fresh.robots.get(id);
        assert.ok(seen?.summary, `${id}: no summary`);
        assert.equal(seen.availability, 'online', `${id}: availability`);
        contract.assert('state-summary.json', seen.summary);
        // What the agent's summariser makes of that robot's store, at the times it sent.
        const times = { changed: seen.summary.changed, seen: seen.summary.seen };
        assert.deepEqual(seen.summary, summarise(fleet.robot(id)!.store.get(), times), id);
      }
      // The fleet is not uniform: the variety simState builds reaches the dashboard too.
      const statuses = new Set([...fresh.robots.values()].map((r) => r.summary!.status));
      assert.deepEqual([...statuses].sort(), ['degraded', 'ok']);
    } finally {
      await fresh.close();
    }
    assert.deepEqual(warnings, []);
  });

  it('a change on one robot reaches a dashboard: the event and the new summary', async () => {
    const id = simRobotId(137);
    const events = await mqtt.connectAsync(rig().mqtt.url, { protocolVersion: 5, reconnectPeriod: 0 });
    try {
      const received: Array<{ type: string; device?: string }> = [];
      events.on('message', (_topic, payload) => received.push(JSON.parse(payload.toString()) as { type: string }));
      await events.subscribeAsync(`${base}/${id}/events`, { qos: 1 });
      const unplugged = () => early.robots.get(id)?.summary?.devices.lidar.present === false;
      const summary = early.waitFor(unplugged, 10_000, () => `${id}'s summary`);
      fleet.robot(id)!.setLidar(false);
      await summary;
      const s = early.robots.get(id)!.summary!;
      assert.equal(s.status, 'degraded');
      assert.ok(s.why.includes('lidar absent'), s.why.join(', '));
      const detached = () => received.some((e) => e.type === 'device.detached' && e.device === 'lidar');
      await early.waitFor(detached, 10_000, () => 'the event');
      // Every other robot's summary is untouched.
      assert.equal([...early.robots.values()].filter((r) => r.summary?.devices.lidar.present === false).length, 1);
    } finally {
      await events.endAsync();
    }
  });

  it('every robot that stops says so: offline, retained', async () => {
    await fleet.stop();
    const offline = (o: FleetObserver) => [...o.robots.values()].filter((r) => r.availability === 'offline').length;
    await early.waitFor(
      () => offline(early) === N,
      20_000,
      () => `${offline(early)} of ${N} offline`,
    );
    // And a dashboard that connects afterwards finds them offline: retained.
    const late = await FleetObserver.connect(rig().mqtt.url, base);
    try {
      await late.waitFor(
        () => offline(late) === N,
        20_000,
        () => `${offline(late)} of ${N} offline`,
      );
    } finally {
      await late.close();
    }
  });
});
