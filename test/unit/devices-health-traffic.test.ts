import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../agent/config/load-config.js';
import { silentLogger } from '../../agent/core/logger.js';
import { absentDevices } from '../../agent/devices/device-resolver.js';
import { DevicesModule } from '../../agent/devices/devices-module.js';
import type { ProbeResult } from '../../agent/devices/lidar-probe.js';
import { EventBus, type AgentEvent } from '../../agent/state/event-bus.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { AgentState, StateSection } from '../../agent/state/types.js';
import { FakeUsbBus, X3 } from '../helpers/fake-sysfs.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';

const INFO = {
  model: 24,
  modelName: 'A1M8',
  firmware: '1.29',
  hardware: 7,
  serial: '0123456789ABCDEF0011223344556677',
};

/**
 * The 5-minute lidar check must not republish the devices section when the lidar answered the
 * same as before: on a fleet, a state per robot per check for nothing is traffic (issue 14).
 */
describe('devices: a periodic lidar check that finds nothing new publishes nothing', () => {
  let module: DevicesModule;
  let store: StateStore;
  let answer: ProbeResult;
  const changes: StateSection[] = [];
  const events: AgentEvent[] = [];

  beforeEach(async () => {
    changes.length = 0;
    events.length = 0;
    const root = tempDir('rfa-usb-');
    const tty = join(root, 'pty');
    writeFileSync(tty, '');
    const usb = new FakeUsbBus(root);
    usb.plug(X3.lidar({ ttyTarget: tty }));
    answer = { ok: true, info: INFO, health: { status: 'good', errorCode: 0 } } as ProbeResult;
    store = new StateStore({ devices: absentDevices() } as unknown as AgentState);
    const bus = new EventBus();
    bus.subscribe((e) => events.push(e));
    const config = loadConfig({ env: {}, hostname: 'x3-test' }).config.devices;
    module = new DevicesModule({
      config: { ...config, sysfsRoot: usb.sysfsRoot, devRoot: usb.devRoot },
      store,
      bus,
      logger: silentLogger,
      probe: async () => answer,
      holders: async () => [],
    });
    await module.start();
    await waitUntil(() => store.get().devices.lidar.health.status === 'good', 5000, 'the start-up probe');
    store.onChange((section) => changes.push(section));
    events.length = 0;
  });

  afterEach(() => module.stop());

  const health = () => store.get().devices.lidar.health;
  /** checkedAt has millisecond resolution: let the clock move so a bumped one would differ. */
  const tick = async (since: string | null) => waitUntil(() => Date.now() > Date.parse(since ?? ''), 1000, 'the clock');

  it('same health twice: no state change, checkedAt still says when this health was found', async () => {
    const first = health().checkedAt;
    await tick(first);
    await module.checkLidar(false);
    assert.deepEqual(changes, [], 'the devices section was republished for an unchanged health');
    assert.equal(health().checkedAt, first);
  });

  it('a changed health is published at once, with its event', async () => {
    const first = health().checkedAt;
    await tick(first);
    answer = { ok: true, info: INFO, health: { status: 'warning', errorCode: 0x8001 } } as ProbeResult;
    await module.checkLidar(false);
    assert.deepEqual(changes, ['devices']);
    assert.equal(health().status, 'warning');
    assert.notEqual(health().checkedAt, first);
    assert.equal(events.filter((e) => e.type === 'device.health').length, 1);
  });

  it('an operator asking (devices.check) gets a fresh checkedAt even when the health is the same', async () => {
    const first = health().checkedAt;
    await tick(first);
    const lidar = await module.checkLidar(true);
    assert.notEqual(lidar.health.checkedAt, first);
    assert.deepEqual(changes, ['devices']);
  });

  it('the port free again after busy is a change', async () => {
    store.update('devices', (d) => ({ ...d, lidar: { ...d.lidar, health: { ...d.lidar.health, busy: true } } }));
    changes.length = 0;
    await module.checkLidar(false);
    assert.equal(health().busy, false);
    assert.deepEqual(changes, ['devices']);
  });
});
