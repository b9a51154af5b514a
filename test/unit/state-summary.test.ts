import assert from 'node:assert/strict';
import { summarise, summaryBytes, SUMMARY_LIMIT_BYTES } from '../../agent/mqtt/summary.js';
import type { AgentState, ContainerState } from '../../agent/state/types.js';
import { Contract } from '../helpers/contract.js';
import { rosContainer, rosImage, V339_ID, V340_ID, x3State } from '../helpers/x3-state.js';

const ROS_339 = 'yahboomtechnology/ros-foxy:3.3.9';
const ROS_340 = 'yahboomtechnology/ros-foxy:3.4.0';
const times = { changed: '2026-11-23T05:00:00.000Z', seen: '2026-11-23T05:01:00.000Z' };

describe('state summary (pure): what <b>/state carries', () => {
  const contract = new Contract();

  it('an X3 with its devices and ROS running is ok, in a few hundred bytes', () => {
    const s = summarise(x3State(), times);
    contract.assert('state-summary.json', s);
    assert.deepEqual(s, {
      robot: 'rosmaster-07',
      status: 'ok',
      why: [],
      version: '0.1.0',
      apiVersion: 1,
      docker: true,
      devices: { lidar: { present: true, health: 'good' }, camera: { present: true }, board: { present: true } },
      containers: {
        total: 1,
        running: 1,
        outdated: 0,
        list: [{ name: 'ros', state: 'running', image: ROS_339, runs: ROS_339, outdated: false }],
        omitted: 0,
      },
      update: { status: 'idle' },
      diskFree: 18253611008,
      changed: times.changed,
      seen: times.seen,
    });
    assert.ok(summaryBytes(s) < 600, `${summaryBytes(s)} bytes`);
  });

  it('is a function of the state: the same state gives the same bytes, and the state is not touched', () => {
    const state = x3State();
    const before = JSON.stringify(state);
    assert.equal(JSON.stringify(summarise(state, times)), JSON.stringify(summarise(x3State(), times)));
    assert.equal(JSON.stringify(state), before);
  });

  it('a container running another image than it should is outdated (degraded); a commit built on it is not', () => {
    const state = x3State();
    state.images = [rosImage('3.3.9', V339_ID), rosImage('3.4.0', V340_ID)];
    const spelled = `docker.io/${ROS_340}`;
    const wants = { image: spelled, enabled: true, source: 'desired' as const };
    state.containers = [rosContainer({ image: ROS_340, desired: wants })];
    let s = summarise(state, times);
    const row = { name: 'ros', state: 'running', image: spelled, runs: ROS_339, outdated: true };
    assert.deepEqual(s.containers.list[0], row);
    assert.equal(s.containers.outdated, 1);
    assert.equal(s.status, 'degraded');
    assert.deepEqual(s.why, ['ros: outdated']);

    // Kept changes: a commit of 3.4.0 plus one layer, named by the snapshot.
    const commitId = `sha256:${'c'.repeat(64)}`;
    const base = rosImage('3.4.0', V340_ID);
    const layers = [...base.layers, `sha256:${'d'.repeat(64)}`];
    state.images.push({ ...base, id: commitId, tags: ['ros-keep:20261123'], layers });
    const desired = { image: ROS_340, enabled: true, source: 'config' as const };
    state.containers = [rosContainer({ image: ROS_340, imageId: commitId, runImage: 'ros-keep:20261123', desired })];
    s = summarise(state, times);
    assert.deepEqual(s.containers.list[0], { ...row, image: ROS_340, runs: 'ros-keep:20261123', outdated: false });
    assert.equal(s.status, 'ok');

    // The image it should run is not on the robot yet: whatever runs is outdated.
    state.containers = [rosContainer({ desired: { ...desired, image: 'yahboomtechnology/ros-foxy:9.9.9' } })];
    assert.equal(summarise(state, times).containers.list[0]!.outdated, true);
  });

  it('status: error beats updating beats degraded, and why lists every reason worst first', () => {
    const state = x3State();
    state.devices.camera.present = false;
    assert.deepEqual([summarise(state, times).status, summarise(state, times).why], ['degraded', ['camera absent']]);
    state.update = { status: 'pulling', container: 'ros', to: ROS_340, progress: { current: 1, total: 2 } };
    const pulling = summarise(state, times);
    assert.deepEqual([pulling.status, pulling.why], ['updating', ['update pulling (ros)', 'camera absent']]);
    assert.deepEqual(summarise(state, times).update, { status: 'pulling', container: 'ros' });
    const error = { code: 'docker_unreachable', message: 'no Docker engine' };
    state.docker = { available: false, since: state.ts, error };
    const s = summarise(state, times);
    assert.equal(s.status, 'error');
    assert.deepEqual(s.why, ['Docker unavailable (docker_unreachable)', 'update pulling (ros)', 'camera absent']);
    assert.equal(s.docker, false);
    contract.assert('state-summary.json', s);
  });

  it('a crashed or failing container is an error; one not in sync says why; the lidar is unknown when absent', () => {
    const state = x3State();
    const reason = 'exited (exit 3); restart policy no';
    state.containers = [rosContainer({ state: 'exited', exitCode: 3, inSync: false, reason })];
    state.devices.lidar = { ...state.devices.lidar, present: false };
    let s = summarise(state, times);
    assert.equal(s.status, 'error');
    assert.deepEqual(s.why, ['ros: exited', 'lidar absent']);
    assert.deepEqual(s.devices.lidar, { present: false, health: 'unknown' });
    state.containers = [rosContainer({ inSync: false, reason: 'recreating: devices moved' })];
    s = summarise(state, times);
    assert.deepEqual([s.status, s.why], ['degraded', ['lidar absent', 'ros: recreating: devices moved']]);
    state.containers = [rosContainer({ inSync: false, error: { code: 'start_failed', message: 'x', at: state.ts } })];
    assert.deepEqual(summarise(state, times).why, ['ros: start_failed', 'lidar absent']);
  });

  it('a disk under 5 % free degrades the robot; diskFree is the fuller disk', () => {
    const state = x3State();
    state.host.metrics!.disks[1] = { ...state.host.metrics!.disks[1]!, available: 1_000_000_000 };
    const s = summarise(state, times);
    assert.equal(s.diskFree, 1_000_000_000);
    assert.deepEqual([s.status, s.why], ['degraded', ['docker disk 1 % free']]);
    state.host.metrics = null;
    assert.equal(summarise(state, times).diskFree, null);
  });

  it('stays within 1 KiB with 32 containers with long names, all failing: counts cover them all', () => {
    const state = x3State();
    state.agent.version = `1.0.0-${'rc'.repeat(60)}`;
    const long = (i: number) => `${String(i).padStart(2, '0')}-${'n'.repeat(60)}`;
    const image = (i: number) => `registry.${'x'.repeat(150)}.example:5000/team/${'r'.repeat(60)}:${i}.0.0`;
    state.containers = Array.from({ length: 32 }, (_, i): ContainerState =>
      rosContainer({
        name: long(i),
        image: image(i),
        desired: { image: image(i), enabled: true, source: 'desired' },
        state: i % 2 === 0 ? 'running' : 'exited',
        exitCode: i % 2 === 0 ? null : 1,
        inSync: i % 2 === 0,
        missingDevices: ['lidar', 'camera', 'board'],
        ...(i % 2 === 0 ? {} : { reason: `exited (exit 1); restart policy no ${'z'.repeat(200)}` }),
      }),
    );
    for (const section of ['lidar', 'camera', 'board'] as const) state.devices[section].present = false;
    state.desired.rejected = { code: 'invalid_desired', message: 'x'.repeat(1000), at: state.ts };
    const s = summarise(state, times);
    const bytes = summaryBytes(s);
    assert.ok(bytes <= SUMMARY_LIMIT_BYTES, `${bytes} bytes`);
    contract.assert('state-summary.json', s);
    assert.equal(s.containers.total, 32);
    assert.equal(s.containers.running, 16);
    assert.equal(s.containers.outdated, 32, 'no image of theirs is on the robot');
    assert.equal(s.containers.list.length + s.containers.omitted, 32);
    assert.ok(s.containers.omitted > 0);
    // Some are listed, the failed ones first.
    assert.ok(s.containers.list.length >= 1, `${s.containers.list.length} listed`);
    for (const c of s.containers.list) assert.equal(c.state, 'exited');
    // At most five reasons, worst first, and the rest counted.
    assert.ok(s.why.length >= 2 && s.why.length <= 6, s.why.join(' | '));
    assert.equal(s.why[0], `01-${'n'.repeat(60)}: exited`);
    assert.match(s.why.at(-1)!, /^\+\d+ more$/);
    assert.equal(s.status, 'error');
    const clipped = (image: string) => image.length <= 80 && image.startsWith('…') && image.endsWith('.0.0');
    assert.ok(s.containers.list.every((c) => clipped(c.image)));
  });

  it('stays within 1 KiB for any count of containers up to 32 and every reason at once', () => {
    for (const n of [0, 1, 2, 5, 8, 16, 31, 32]) {
      const state: AgentState = x3State();
      const name = (i: number) => `ros-${'a'.repeat(58)}${String(i).padStart(2, '0')}`;
      const reason = 'r'.repeat(300);
      state.containers = Array.from({ length: n }, (_, i) => rosContainer({ name: name(i), inSync: false, reason }));
      const bytes = summaryBytes(summarise(state, times));
      assert.ok(bytes <= SUMMARY_LIMIT_BYTES, `${n} containers: ${bytes} bytes`);
    }
  });
});
