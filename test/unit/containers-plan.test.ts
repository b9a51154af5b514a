import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { mock } from 'node:test';
import type { ContainerSpec } from '../../agent/config/types.js';
import {
  devicesMoved,
  planContainers,
  type DesiredContainer,
  type ObservedContainer,
  type PlanInput,
} from '../../agent/containers/container-plan.js';
import { createOptions, LABELS, specHash } from '../../agent/containers/container-spec.js';
import { mergeDesired, parseDesired } from '../../agent/containers/desired-state.js';
import { resolveDeviceMappings, splitDev } from '../../agent/containers/device-mappings.js';
import { planNodeSync, nodeSyncArgs } from '../../agent/containers/node-sync.js';
import { loadConfig } from '../../agent/config/load-config.js';
import { ContainersModule, type UpdatesPort } from '../../agent/containers/containers-module.js';
import { AgentError } from '../../agent/core/errors.js';
import { createLogger } from '../../agent/core/logger.js';
import { EventBus, type AgentEvent } from '../../agent/state/event-bus.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { AgentState } from '../../agent/state/types.js';
import { fakeUpdates } from '../helpers/fake-updates.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import { absentDevices } from '../../agent/devices/device-resolver.js';
import type { DevicesState } from '../../agent/state/types.js';

const IMAGE = 'yahboomtechnology/ros-foxy:3.3.9';
const NEXT = 'yahboomtechnology/ros-foxy:3.4.0';

function spec(o: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    image: IMAGE,
    enabled: true,
    devices: ['lidar', 'camera', 'board'],
    required: [],
    replug: 'live',
    deviceMajors: [188, 189, 81],
    network: 'host',
    env: {},
    ports: [],
    mounts: [],
    tty: false,
    restart: 'unless-stopped',
    privileged: false,
    capAdd: [],
    stopTimeout: 10,
    ...o,
  };
}

function desired(o: Partial<DesiredContainer> & { spec?: ContainerSpec } = {}): DesiredContainer {
  const s = o.spec ?? spec();
  return { name: 'ros', spec: s, image: IMAGE, enabled: true, source: 'config', specHash: specHash(s), ...o };
}

function observed(o: Partial<ObservedContainer> = {}): ObservedContainer {
  return {
    id: 'c1',
    name: 'ros',
    image: IMAGE,
    runImage: IMAGE,
    imageId: 'sha256:1',
    state: 'running',
    health: null,
    startedAt: '2026-11-24T00:00:00Z',
    restartCount: 0,
    exitCode: null,
    specHash: specHash(spec()),
    createdDevices: [],
    ...o,
  };
}

function input(o: Partial<PlanInput> = {}): PlanInput {
  return {
    desired: [desired()],
    observed: [],
    devices: new Map(),
    imagePresent: () => true,
    pulling: new Set(),
    held: new Set(),
    backingOff: new Set(),
    ...o,
  };
}

const CATALOG = {
  sysfsRoot: '/sys',
  devRoot: '/dev',
  pollInterval: 5000,
  watch: true,
  lidar: { vid: '10c4', pid: 'ea60', alias: 'rplidar', baudRate: 115200, checkInterval: 300, timeout: 2000 },
  camera: { vid: '2bc5', depthPid: '060f', rgbPid: '050f', depthAlias: 'astradepth', rgbAlias: 'astrauvc' },
  board: { vid: '1a86', pid: '7523', alias: 'myserial' },
};

function x3Devices(): DevicesState {
  const d = absentDevices();
  d.lidar = { ...d.lidar, present: true, path: '/dev/rplidar', node: '/dev/ttyUSB0' };
  d.board = { present: true, path: '/dev/myserial', node: '/dev/ttyUSB1', usb: null };
  d.camera = {
    present: true,
    depth: { busnum: 1, devnum: 7, node: '/dev/bus/usb/001/007' },
    rgb: { busnum: 1, devnum: 8, node: '/dev/bus/usb/001/008', video: ['/dev/video0'] },
  };
  return d;
}

describe('container planning (pure)', () => {
  it('creates a missing container, and pulls first when its image is not here', () => {
    assert.deepEqual(planContainers(input()).steps, [{ action: 'run', name: 'ros', image: IMAGE }]);
    const pulling = planContainers(input({ imagePresent: () => false }));
    assert.deepEqual(pulling.steps, [{ action: 'pull', name: 'ros', image: IMAGE }]);
    assert.equal(pulling.verdicts.get('ros')?.reason, `pulling ${IMAGE}`);
    assert.deepEqual(planContainers(input({ imagePresent: () => false, pulling: new Set([IMAGE]) })).steps, []);
  });

  it('hands a new image for a running container to the update flow, which pulls while it runs', () => {
    const want = desired({ image: NEXT, source: 'desired' });
    const step = [{ action: 'replace', name: 'ros', id: 'c1', image: NEXT, reason: 'update' }];
    assert.deepEqual(
      planContainers(input({ desired: [want], observed: [observed()], imagePresent: (i) => i === IMAGE })).steps,
      step,
    );
    assert.deepEqual(planContainers(input({ desired: [want], observed: [observed()] })).steps, step);
    // The same tag pulled anew (another image id) is an update too; a container run from a commit is not.
    assert.deepEqual(planContainers(input({ observed: [observed()], imageIdOf: () => 'sha256:2' })).steps, [
      { action: 'replace', name: 'ros', id: 'c1', image: IMAGE, reason: 'update' },
    ]);
    assert.deepEqual(
      planContainers(
        input({ observed: [observed({ runImage: 'yahboomtechnology/ros-foxy:ros-1' })], imageIdOf: () => 'sha256:2' }),
      ).steps,
      [],
    );
    // While the flow owns it, nothing; a target that rolled back is not tried again.
    assert.deepEqual(
      planContainers(input({ desired: [want], observed: [observed()], updating: new Set(['ros']) })).steps,
      [],
    );
    const refused = planContainers(
      input({
        desired: [want],
        observed: [observed()],
        rolledBack: new Map([['ros', { image: NEXT, reason: 'container_exited' }]]),
      }),
    );
    assert.deepEqual(refused.steps, []);
    assert.match(refused.verdicts.get('ros')!.reason!, /rolled back \(container_exited\)/);
  });

  it('the window and the inhibit lock are inputs: held back, an update waits with a verdict and no step', () => {
    const want = desired({ image: NEXT, source: 'desired' });
    const closed = { windowOpen: false, nextWindow: '2026-12-07T02:00:00.000Z', locked: false };
    const waiting = planContainers(input({ desired: [want], observed: [observed()], updateGate: closed }));
    assert.deepEqual(waiting.steps, []);
    assert.equal(
      waiting.verdicts.get('ros')!.reason,
      `update to ${NEXT} waits for the maintenance window (opens 2026-12-07T02:00:00.000Z)`,
    );
    assert.deepEqual(waiting.gated, [
      { name: 'ros', id: 'c1', image: NEXT, waitingFor: 'window', nextWindow: '2026-12-07T02:00:00.000Z' },
    ]);
    // The download does not wait for the window: a new image that is not here is pulled meanwhile.
    const absent = planContainers(
      input({ desired: [want], observed: [observed()], updateGate: closed, imagePresent: (i) => i === IMAGE }),
    );
    assert.deepEqual(absent.steps, [{ action: 'pull', name: 'ros', image: NEXT }]);
    // Forced (update force, rollback, restore): the window does not hold it back.
    const forced = planContainers(
      input({ desired: [want], observed: [observed()], updateGate: closed, forced: new Set(['ros']) }),
    );
    assert.deepEqual(forced.steps, [{ action: 'replace', name: 'ros', id: 'c1', image: NEXT, reason: 'update' }]);
    // The inhibit lock holds even a forced one (the robot drives or teaches).
    const lock = { windowOpen: true, nextWindow: null, locked: true };
    const locked = planContainers(
      input({ desired: [want], observed: [observed()], updateGate: lock, forced: new Set(['ros']) }),
    );
    assert.deepEqual(locked.steps, []);
    assert.equal(locked.verdicts.get('ros')!.reason, `update to ${NEXT} waits for the inhibit lock to go`);
    assert.equal(locked.gated[0]?.waitingFor, 'lock');
    // The gates hold updates only: a container in sync plans nothing, gated or not.
    assert.deepEqual(planContainers(input({ observed: [observed()], updateGate: closed })).gated, []);
    // An update whose pull runs in the background: no step until it ends.
    const preparing = planContainers(input({ desired: [want], observed: [observed()], preparing: new Set(['ros']) }));
    assert.deepEqual(preparing.steps, []);
    assert.equal(preparing.verdicts.get('ros')!.reason, `pulling ${NEXT}`);
  });

  it('a command that waits for its update is held back neither by a rolled-back target nor by the retry time', () => {
    const want = desired({ image: NEXT, source: 'desired' });
    const rolledBack = new Map([['ros', { image: NEXT, reason: 'container_exited' }]]);
    const retry = new Map([['ros', '2026-12-06T10:30:00.000Z']]);
    const base = { desired: [want], observed: [observed()], rolledBack, updateRetry: retry };
    assert.deepEqual(planContainers(input(base)).steps, [], 'the loop alone: not tried again');
    assert.deepEqual(planContainers(input({ ...base, asked: new Set(['ros']) })).steps, [
      { action: 'replace', name: 'ros', id: 'c1', image: NEXT, reason: 'update' },
    ]);
  });

  it('while a failed update backs off (update.retry), plans no update and says when it is tried again', () => {
    const want = desired({ image: NEXT, source: 'desired' });
    const retry = new Map([['ros', '2026-12-06T10:30:00.000Z']]);
    const plan = planContainers(input({ desired: [want], observed: [observed()], updateRetry: retry }));
    assert.deepEqual(plan.steps, []);
    assert.equal(plan.verdicts.get('ros')!.reason, `update to ${NEXT} failed; tried again at 2026-12-06T10:30:00.000Z`);
  });

  it('recreates on a changed spec; an in-sync running container needs nothing', () => {
    const changed = spec({ env: { ROS_DOMAIN_ID: '7' } });
    assert.deepEqual(planContainers(input({ desired: [desired({ spec: changed })], observed: [observed()] })).steps, [
      { action: 'recreate', name: 'ros', id: 'c1', image: IMAGE, reason: 'spec' },
    ]);
    const plan = planContainers(input({ observed: [observed()] }));
    assert.deepEqual(plan.steps, []);
    assert.deepEqual(plan.verdicts.get('ros'), { inSync: true });
  });

  it('waits for required devices, but never stops a running container for them', () => {
    const s = spec({ required: ['lidar'] });
    const devices = new Map([['ros', { mappings: [], missing: ['lidar' as const] }]]);
    const waiting = planContainers(input({ desired: [desired({ spec: s })], devices }));
    assert.deepEqual(waiting.steps, []);
    assert.equal(waiting.verdicts.get('ros')?.reason, 'waiting for lidar');
    assert.deepEqual(
      planContainers(
        input({ desired: [desired({ spec: s })], observed: [observed({ specHash: specHash(s) })], devices }),
      ).steps,
      [],
    );
  });

  it('stops a disabled or held container and leaves it stopped; stops orphans without removing them', () => {
    assert.deepEqual(planContainers(input({ desired: [desired({ enabled: false })], observed: [observed()] })).steps, [
      { action: 'stop', name: 'ros', id: 'c1', reason: 'disabled' },
    ]);
    assert.deepEqual(planContainers(input({ held: new Set(['ros']), observed: [observed()] })).steps, [
      { action: 'stop', name: 'ros', id: 'c1', reason: 'held' },
    ]);
    assert.deepEqual(
      planContainers(input({ held: new Set(['ros']), observed: [observed({ state: 'exited', exitCode: 0 })] })).steps,
      [],
    );
    assert.deepEqual(planContainers(input({ desired: [], observed: [observed({ name: 'old' })] })).steps, [
      { action: 'stop', name: 'old', id: 'c1', reason: 'orphan' },
    ]);
  });

  it('restarts an exited container as its restart policy says, and not while backing off', () => {
    const exited = (exitCode: number) => observed({ state: 'exited', exitCode });
    const steps = (restart: ContainerSpec['restart'], exitCode: number) => {
      const s = spec({ restart });
      return planContainers(
        input({ desired: [desired({ spec: s })], observed: [{ ...exited(exitCode), specHash: specHash(s) }] }),
      ).steps.map((x) => x.action);
    };
    assert.deepEqual(steps('unless-stopped', 0), ['start']);
    assert.deepEqual(steps('on-failure', 3), ['start']);
    assert.deepEqual(steps('on-failure', 0), []);
    assert.deepEqual(steps('no', 3), []);
    assert.deepEqual(planContainers(input({ observed: [exited(3)], backingOff: new Set(['ros']) })).steps, []);
    assert.deepEqual(
      planContainers(input({ observed: [observed({ state: 'created' })] })).steps.map((x) => x.action),
      ['start'],
    );
  });

  it('replug policy recreate: a device that moved recreates, one that only left does not', () => {
    const created = [
      { device: 'camera', key: 'camera-depth', host: '/dev/bus/usb/001/007', container: '/dev/bus/usb/001/007' },
    ];
    assert.equal(
      devicesMoved(created, [{ ...created[0]!, host: '/dev/bus/usb/001/009', container: '/dev/bus/usb/001/009' }]),
      true,
    );
    assert.equal(devicesMoved(created, []), false);
    assert.equal(devicesMoved(created, created), false);
    const s = spec({ replug: 'recreate' });
    const devices = new Map([['ros', { mappings: [{ ...created[0]!, host: '/dev/bus/usb/001/009' }], missing: [] }]]);
    const plan = planContainers(
      input({
        desired: [desired({ spec: s })],
        observed: [observed({ specHash: specHash(s), createdDevices: created })],
        devices,
      }),
    );
    assert.deepEqual(plan.steps, [{ action: 'recreate', name: 'ros', id: 'c1', image: IMAGE, reason: 'devices' }]);
  });
});

describe('container devices and create options (pure)', () => {
  it('maps the X3 devices to their aliases, the camera also to its literal USB paths and video nodes', () => {
    const { mappings, missing } = resolveDeviceMappings(
      spec({ devices: ['lidar', 'camera', 'board', '/dev/input'] }),
      x3Devices(),
      CATALOG,
    );
    assert.deepEqual(missing, []);
    assert.deepEqual(
      mappings.map((m) => [m.key, m.host, m.container]),
      [
        ['lidar', '/dev/ttyUSB0', '/dev/rplidar'],
        ['camera-depth', '/dev/bus/usb/001/007', '/dev/bus/usb/001/007'],
        ['camera-depth', '/dev/bus/usb/001/007', '/dev/astradepth'],
        ['camera-rgb', '/dev/bus/usb/001/008', '/dev/bus/usb/001/008'],
        ['camera-rgb', '/dev/bus/usb/001/008', '/dev/astrauvc'],
        ['camera-video0', '/dev/video0', '/dev/video0'],
        ['board', '/dev/ttyUSB1', '/dev/myserial'],
        ['/dev/input', '/dev/input', '/dev/input'],
      ],
    );
    assert.deepEqual(resolveDeviceMappings(spec(), absentDevices(), CATALOG).missing, ['lidar', 'camera', 'board']);
  });

  it('builds the create body: stable node sources, cgroup rules for live replug, labels, ports, nothing privileged by default', () => {
    const s = spec({
      ports: ['9090:9090', '127.0.0.1:8888:8888/udp'],
      mounts: ['/tmp/.X11-unix:/tmp/.X11-unix:ro'],
      env: { DISPLAY: ':0' },
    });
    const mappings = resolveDeviceMappings(s, x3Devices(), CATALOG).mappings;
    const body = createOptions({
      name: 'ros',
      spec: s,
      image: IMAGE,
      runImage: IMAGE,
      mappings,
      stableNode: (k) => `/var/lib/robot-agent/dev/${k}`,
    });
    assert.deepEqual(body.HostConfig?.DeviceCgroupRules, ['c 188:* rmw', 'c 189:* rmw', 'c 81:* rmw']);
    assert.deepEqual(body.HostConfig?.Devices?.[0], {
      PathOnHost: '/var/lib/robot-agent/dev/lidar',
      PathInContainer: '/dev/rplidar',
      CgroupPermissions: 'rwm',
    });
    assert.deepEqual(body.HostConfig?.PortBindings, {
      '9090/tcp': [{ HostIp: '', HostPort: '9090' }],
      '8888/udp': [{ HostIp: '127.0.0.1', HostPort: '8888' }],
    });
    assert.equal(body.HostConfig?.Privileged, false);
    assert.deepEqual(body.Env, ['DISPLAY=:0']);
    assert.equal(body.Labels?.['io.robot-agent.managed'], 'true');
    assert.equal(body.Labels?.['io.robot-agent.spec'], specHash(s));
    const recreate = createOptions({
      name: 'ros',
      spec: spec({ replug: 'recreate' }),
      image: IMAGE,
      runImage: IMAGE,
      mappings,
      stableNode: (k) => k,
    });
    assert.deepEqual(recreate.HostConfig?.DeviceCgroupRules, []);
  });

  it('node sync: remakes what changed, removes what is stale, in argument form', () => {
    const m = {
      device: 'camera',
      key: 'camera-depth',
      host: '/dev/bus/usb/001/009',
      container: '/dev/bus/usb/001/009',
      major: 189,
      minor: 8,
      mode: 0o664,
    };
    const plan = planNodeSync([m], new Set(['/dev/bus/usb/001/007', '/dev/bus/usb/001/009']));
    assert.deepEqual(plan.remove, ['/dev/bus/usb/001/007']);
    assert.deepEqual(nodeSyncArgs(plan), [
      'r',
      '/dev/bus/usb/001/007',
      'c',
      '/dev/bus/usb/001/009',
      '189',
      '8',
      'bd:8',
      '664',
    ]);
  });

  it('splits dev_t as glibc does, small and large numbers', () => {
    assert.deepEqual(splitDev(189 * 256 + 8), { major: 189, minor: 8 });
    // major 259, minor 300000: minor high bits live above bit 20.
    const rdev = ((300000 & 0xff) | ((259 & 0xfff) << 8) | ((300000 & ~0xff) << 12)) >>> 0;
    assert.deepEqual(splitDev(rdev), { major: 259, minor: 300000 });
  });
});

describe('desired state (pure)', () => {
  const config = { containers: { ros: spec() }, images: { allow: ['yahboomtechnology/*'] } } as never;
  const code = (payload: string) => {
    try {
      parseDesired(Buffer.from(payload), config);
      return 'ok';
    } catch (err) {
      return (err as AgentError).code;
    }
  };

  it('accepts image and enabled for configured containers, normalised; an empty message clears it', () => {
    assert.deepEqual(
      parseDesired(
        Buffer.from(
          JSON.stringify({
            containers: { ros: { image: 'docker.io/yahboomtechnology/ros-foxy:3.4.0' } },
            version: 'v2',
          }),
        ),
        config,
      ),
      {
        containers: { ros: { image: NEXT } },
        version: 'v2',
      },
    );
    assert.equal(parseDesired(Buffer.alloc(0), config), null);
    const merged = mergeDesired({ ros: spec() }, { containers: { ros: { enabled: false } } });
    assert.deepEqual([merged[0]!.image, merged[0]!.enabled, merged[0]!.source], [IMAGE, false, 'desired']);
  });

  it('refuses the whole message with a code for anything the config does not allow', () => {
    assert.equal(code('{'), 'bad_json');
    assert.equal(code('[]'), 'invalid_desired');
    assert.equal(
      code(JSON.stringify({ containers: { ros: { image: IMAGE, mounts: ['/:/host'] } } })),
      'invalid_desired',
    );
    assert.equal(code(JSON.stringify({ containers: { ros: { image: 'evil/miner' } } })), 'not_allowed');
    assert.equal(code(JSON.stringify({ containers: { ros: { image: 'UPPER' } } })), 'bad_reference');
    assert.equal(code(JSON.stringify({ containers: { ros: {}, other: { enabled: true } } })), 'unknown_container');
    assert.equal(code('{"containers":{"__proto__":{"enabled":true}}}'), 'unknown_container');
    assert.equal(code('{"containers":{"constructor":{"enabled":true}}}'), 'unknown_container');
  });
});

describe('fleet view (pure)', () => {
  it('draws progress bars and a table an operator can scan', async () => {
    const { progressBar, renderFleetTable } = await import('../../agent/fleet/fleet-view.js');
    assert.equal(progressBar(5e6, 20e6, 10), '[###-------]  25% 5.0/20.0 MB');
    assert.equal(progressBar(30, 20, 4), '[####] 100% 0.0/0.0 MB');
    const table = renderFleetTable([
      { robot: 'b', online: false, state: null },
      { robot: 'a', online: null, state: null },
    ]);
    assert.deepEqual(
      table.split('\n').map((l) => l.split(/\s+/).slice(0, 2)),
      [
        ['ROBOT', 'ONLINE'],
        ['a', '?'],
        ['b', 'OFFLINE'],
      ],
    );
  });
});

describe('container planning: who acts first, and never sooner than a retry', () => {
  const every: Array<[string, Partial<PlanInput>]> = [
    ['held stop', { held: new Set(['ros']), observed: [observed()] }],
    ['disabled stop', { desired: [desired({ enabled: false })], observed: [observed()] }],
    ['pull', { imagePresent: () => false }],
    ['run', {}],
    ['start', { observed: [observed({ state: 'exited', exitCode: 1 })] }],
    ['recreate', { observed: [observed({ specHash: 'other' })] }],
    ['update', { desired: [desired({ image: NEXT })], observed: [observed()] }],
  ];

  it('no step of any kind for a container backing off, stops included', () => {
    for (const [what, o] of every) {
      assert.equal(planContainers(input(o)).steps.length, 1, `${what} is planned when not backing off`);
      assert.deepEqual(
        planContainers(input({ ...o, backingOff: new Set(['ros']) })).steps,
        [],
        `${what} while backing off`,
      );
    }
  });

  it('a container the update flow owns gets no step, not even a stop by command or a disable', () => {
    for (const [what, o] of every) {
      const plan = planContainers(input({ ...o, updating: new Set(['ros']) }));
      assert.deepEqual(plan.steps, [], what);
      assert.match(plan.verdicts.get('ros')?.reason ?? '', /^updating to/);
    }
  });

  it('a container that left the config is stopped once, not while backing off, and not again', () => {
    const orphan = observed({ name: 'old', id: 'o1' });
    assert.deepEqual(planContainers(input({ desired: [], observed: [orphan] })).steps, [
      { action: 'stop', name: 'old', id: 'o1', reason: 'orphan' },
    ]);
    assert.deepEqual(
      planContainers(input({ desired: [], observed: [orphan], backingOff: new Set(['old']) })).steps,
      [],
    );
    assert.deepEqual(
      planContainers(input({ desired: [], observed: [orphan], orphansStopped: new Set(['o1']) })).steps,
      [],
    );
  });

  it('after a rolled-back update the old container is kept as any other: started when down, by policy or command', () => {
    const rolledBack = new Map([['ros', { image: NEXT, reason: 'container_exited' }]]);
    const want = [desired({ image: NEXT })];
    const running = planContainers(input({ desired: want, observed: [observed()], rolledBack }));
    assert.deepEqual(running.steps, []);
    assert.match(running.verdicts.get('ros')!.reason!, /rolled back \(container_exited\); running .*3\.3\.9/);
    const stopped = planContainers(
      input({ desired: want, observed: [observed({ state: 'exited', exitCode: 0 })], rolledBack }),
    );
    assert.deepEqual(stopped.steps, [{ action: 'start', name: 'ros', id: 'c1' }]);
    const policyNo = [desired({ image: NEXT, spec: spec({ restart: 'no' }) })];
    const exited = observed({ state: 'exited', exitCode: 0, specHash: specHash(spec({ restart: 'no' })) });
    const left = planContainers(input({ desired: policyNo, observed: [exited], rolledBack }));
    assert.deepEqual(left.steps, []);
    assert.match(left.verdicts.get('ros')!.reason!, /rolled back .*exited \(exit 0\)/);
    const asked = planContainers(
      input({ desired: policyNo, observed: [exited], rolledBack, startNow: new Set(['ros']) }),
    );
    assert.deepEqual(asked.steps, [{ action: 'start', name: 'ros', id: 'c1' }]);
  });
});

/** An engine with one container in it whose calls are counted, and fail when told to. */
class FakeEngine {
  calls: Record<string, number> = {};
  fail = new Set<string>();
  containers: Array<{ id: string; name: string; image: string; state: string; exitCode: number; specHash: string }> =
    [];

  private call(what: string): void {
    this.calls[what] = (this.calls[what] ?? 0) + 1;
    if (this.fail.has(what)) throw Object.assign(new Error(`engine refused ${what}`), { statusCode: 500 });
  }

  docker(): unknown {
    return {
      listContainers: async () => {
        this.call('list');
        return this.containers.map((c) => ({
          Id: c.id,
          Names: [`/${c.name}`],
          State: c.state,
          Labels: { [LABELS.managed]: 'true', [LABELS.name]: c.name },
        }));
      },
      createContainer: async () => {
        this.call('create');
        return { id: 'new', start: async () => this.call('start') };
      },
      getContainer: (id: string) => {
        const c = this.containers.find((x) => x.id === id)!;
        return {
          id,
          inspect: async () => ({
            Id: c.id,
            Name: `/${c.name}`,
            Image: 'sha256:1',
            RestartCount: 0,
            HostConfig: { Devices: [] },
            Mounts: [],
            Config: {
              Image: c.image,
              Labels: {
                [LABELS.managed]: 'true',
                [LABELS.name]: c.name,
                [LABELS.image]: c.image,
                [LABELS.spec]: c.specHash,
              },
            },
            State: { Status: c.state, StartedAt: '2026-11-24T00:00:00Z', ExitCode: c.exitCode },
          }),
          stop: async () => this.call('stop'),
          start: async () => this.call('start'),
          changes: async () => [],
          rename: async () => this.call('rename'),
          remove: async () => this.call('remove'),
        };
      },
    };
  }
}

describe('the containers loop honours every retry time (injected clock)', () => {
  let clock = 1_000_000;
  let module: ContainersModule | undefined;
  afterEach(async () => module?.stop());

  interface Fakes {
    containers: Record<string, unknown>;
    engine: FakeEngine;
    pull?: () => Promise<void>;
    startUpdate?: (name: string) => void;
    images?: string[];
  }
  function build(o: Fakes) {
    const dir = tempDir('rfa-loop-');
    mkdirSync(join(dir, 'state'));
    const { config } = loadConfig({
      file: writeYaml(dir, 'config.yaml', {
        robot: { id: 'unit' },
        state: { dir: join(dir, 'state') },
        reconcile: { retry: { initial: 1, max: 4 } },
        containers: o.containers,
      }),
      env: {},
    });
    const events: AgentEvent[] = [];
    const bus = new EventBus();
    bus.subscribe((e) => events.push(e));
    const store = new StateStore({
      devices: absentDevices(),
      containers: [],
      desired: { appliedAt: null },
    } as unknown as AgentState);
    const updates: UpdatesPort = fakeUpdates({
      replace: async (job) => {
        o.startUpdate?.(job.container);
        throw new AgentError('update_failed', 'no');
      },
    });
    module = new ContainersModule({
      config,
      updates,
      engine: {
        available: true,
        required: () => o.engine.docker(),
        onConnected: () => () => undefined,
        onEngineEvent: () => () => undefined,
      } as never,
      puller: { pull: o.pull ?? (async () => undefined) } as never,
      inventory: {
        current: async () => (o.images ?? [IMAGE]).map((tag) => ({ id: 'sha256:1', tags: [tag] })),
        refresh: async () => undefined,
      } as never,
      store,
      bus,
      logger: createLogger({ level: 'error', write: () => undefined }),
      now: () => clock,
    });
    return { module, events };
  }

  const ros = (o: Partial<FakeEngine['containers'][number]> = {}) => ({
    id: 'c1',
    name: 'ros',
    image: IMAGE,
    state: 'running',
    exitCode: 0,
    specHash: 'x',
    ...o,
  });
  const rosSpec = { ros: { image: IMAGE, devices: [], restart: 'unless-stopped' } };

  /** Reconciles three times at the same instant, then once past the longest retry delay. */
  async function attempts(m: ContainersModule, count: () => number): Promise<[number, number]> {
    for (let i = 0; i < 3; i += 1) {
      await m.reconcile();
      await new Promise((r) => setImmediate(r));
    }
    const before = count();
    clock += 5_000;
    await m.reconcile();
    await new Promise((r) => setImmediate(r));
    return [before, count()];
  }

  it('a container that left the config: one failed stop per retry time, not a spin (issue 19.1)', async () => {
    const engine = new FakeEngine();
    engine.containers = [ros()];
    engine.fail.add('stop');
    const { module: m, events } = build({ containers: {}, engine });
    assert.deepEqual(await attempts(m, () => engine.calls.stop ?? 0), [1, 2]);
    assert.equal(events.filter((e) => e.type === 'container.failed').length, 2);
    engine.fail.clear();
    clock += 5_000;
    await m.reconcile();
    engine.containers[0]!.state = 'exited';
    await m.reconcile();
    assert.equal(engine.calls.stop, 3, 'stopped once it could be; not again');
  });

  it('steps that succeed yet change nothing are not run again at once: the next reconcile waits its backoff', async () => {
    const hash = build({ containers: rosSpec, engine: new FakeEngine() }).module.desiredContainers()[0]!.specHash;
    await module!.stop();
    const engine = new FakeEngine();
    // Started, yet still exited at every look: each pass plans the start again.
    engine.containers = [ros({ state: 'exited', exitCode: 1, specHash: hash })];
    const { module: m } = build({ containers: rosSpec, engine });
    const flush = async () => {
      for (let i = 0; i < 50; i += 1) await new Promise((r) => setImmediate(r));
    };
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      await m.start();
      mock.timers.tick(60);
      await flush();
      const once = engine.calls.start ?? 0;
      assert.ok(once > 0, 'the first reconcile started it');
      mock.timers.tick(200);
      await flush();
      assert.equal(engine.calls.start, once, 'a reconcile ran again before any backoff');
      mock.timers.tick(5_000);
      await flush();
      mock.timers.tick(60);
      await flush();
      assert.ok((engine.calls.start ?? 0) > once, 'and again after it');
    } finally {
      mock.timers.reset();
      await m.stop();
    }
  });

  it('a reconcile asked for just before the module stops never runs after it', async () => {
    const engine = new FakeEngine();
    const { module: m } = build({ containers: rosSpec, engine });
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      await m.start();
      m.requestReconcile();
      await m.stop();
      mock.timers.tick(10_000);
      for (let i = 0; i < 20; i += 1) await new Promise((r) => setImmediate(r));
      assert.equal(engine.calls.list ?? 0, 0, 'the engine was looked at after stop');
      assert.equal(engine.calls.create ?? 0, 0);
    } finally {
      mock.timers.reset();
    }
  });

  it('every other failing step is retried at its time, never sooner', async () => {
    const specHashOf = async (): Promise<string> => {
      const e = new FakeEngine();
      const { module: probe } = build({ containers: rosSpec, engine: e });
      return probe.desiredContainers()[0]!.specHash;
    };
    const hash = await specHashOf();
    const cases: Array<[string, string, (e: FakeEngine) => void, Record<string, unknown>?]> = [
      ['start', 'start', (e) => (e.containers = [ros({ state: 'exited', exitCode: 1, specHash: hash })])],
      ['run', 'create', () => undefined],
      ['recreate', 'rename', (e) => (e.containers = [ros({ specHash: 'old' })])],
      ['held stop', 'stop', (e) => (e.containers = [ros({ specHash: hash })])],
    ];
    for (const [what, call, setup] of cases) {
      const engine = new FakeEngine();
      setup(engine);
      engine.fail.add(call);
      const { module: m } = build({ containers: rosSpec, engine });
      if (what === 'held stop') await assert.rejects(m.stopByCommand('ros'), { code: 'stop_failed' });
      assert.deepEqual(await attempts(m, () => engine.calls[call] ?? 0), [1, 2], what);
      await m.stop();
    }
    let pulls = 0;
    const pull = async () => {
      pulls += 1;
      throw new AgentError('pull_failed', 'registry down');
    };
    const { module: pulling } = build({ containers: rosSpec, engine: new FakeEngine(), images: [], pull });
    assert.deepEqual(await attempts(pulling, () => pulls), [1, 2], 'pull');
    await pulling.stop();
    let updates = 0;
    const engine = new FakeEngine();
    engine.containers = [ros({ specHash: hash, image: 'yahboomtechnology/ros-foxy:3.3.8' })];
    // The replacement fails (the fake's): the loop notes the failure and backs the container off.
    const startUpdate = () => {
      updates += 1;
    };
    const { module: updating } = build({ containers: rosSpec, engine, startUpdate });
    assert.deepEqual(await attempts(updating, () => updates), [1, 2], 'update');
  });
});
