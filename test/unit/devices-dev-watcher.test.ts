import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { Backoff } from '../../agent/core/backoff.js';
import { createLogger } from '../../agent/core/logger.js';
import { DevWatcher } from '../../agent/devices/dev-watcher.js';
import { FakeUsbBus, X3 } from '../helpers/fake-sysfs.js';
import { tempDir } from '../helpers/temp.js';
import { scaled } from '../helpers/time-scale.js';
import { sleep, waitUntil } from '../helpers/wait.js';

/** The watcher on a fake bus's dev dir (real nodes made by mknod, so real inotify events). */
function setUp(o: { watchFn?: typeof watch } = {}) {
  const root = tempDir('rfa-devwatch-');
  const bus = new FakeUsbBus(root);
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: 'debug',
    write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>),
  });
  let changes = 0;
  // random 1: the top of each backoff window, so the test knows the longest wait.
  const backoff = new Backoff({ initialMs: 200, maxMs: 400, random: () => 1 });
  const watcher = new DevWatcher({ devRoot: bus.devRoot, onChange: () => (changes += 1), logger, backoff, ...o });
  return { root, bus, logs, watcher, changes: () => changes };
}

describe('devices: the /dev watcher (hot-plug by inotify, issue 14)', () => {
  let current: DevWatcher | undefined;
  afterEach(() => current?.stop());

  it('a plug, an unplug and a replug each wake it once, within 200 ms', async () => {
    const { bus, watcher, changes } = setUp();
    current = watcher;
    watcher.start();
    const timed = async (what: string, act: () => void) => {
      const before = changes();
      const t0 = Date.now();
      act();
      await waitUntil(() => changes() > before, 2000, what, 5);
      const ms = Date.now() - t0;
      // 200 ms natively; under the arm64 leg's emulation (TEST_TIME_SCALE) everything is that much slower.
      assert.ok(ms < scaled(200), `${what} took ${ms} ms`);
      // The burst (node, tty, alias: several events) is one rescan; a second one would show by now.
      await sleep(scaled(100));
      assert.equal(changes(), before + 1, `${what}: one wake for the burst`);
    };
    await timed('plug', () => bus.plug(X3.lidar()));
    await timed('unplug', () => bus.unplug('1-1.2'));
    await timed('replug', () => {
      bus.plug(X3.board());
      bus.replug('1-1.3', { devnum: 9, tty: 'ttyUSB4' });
    });
  });

  it("a device with only a USB node (the camera's depth function, no alias) wakes it: bus/usb/BBB is watched", async () => {
    const { bus, watcher, changes } = setUp();
    current = watcher;
    bus.plug(X3.board());
    watcher.start();
    bus.plug(X3.cameraDepth({ alias: undefined }));
    await waitUntil(() => changes() === 1, 2000, 'the depth node seen', 5);
  });

  it('a write to a file in a watched directory is not hot-plug: no rescan', async () => {
    const { bus, watcher, changes } = setUp();
    current = watcher;
    const file = join(bus.devRoot, 'busy');
    writeFileSync(file, '');
    watcher.start();
    for (let i = 0; i < 50; i += 1) appendFileSync(file, 'x');
    // inotify merges identical events in a row: at least one reaches the watcher.
    await waitUntil(() => watcher.counts.events >= 1, 2000, 'the writes seen as events', 5);
    await sleep(100);
    assert.equal(changes(), 0);
  });

  it('its directory vanishing: no spin, one warning, watched again once it is back', async () => {
    const { root, bus, logs, watcher, changes } = setUp();
    current = watcher;
    watcher.start();
    const opened = watcher.counts.opened;
    rmSync(bus.devRoot, { recursive: true, force: true });
    // Absence of a spin can only be shown over a window: 1.5 s is 4 retries at 200-400 ms.
    await sleep(1500);
    assert.equal(watcher.counts.opened, opened, 'nothing to open while the directory is gone');
    assert.ok(watcher.counts.failures <= 6, `${watcher.counts.failures} retries in 1.5 s`);
    assert.ok(changes() <= 2, `${changes()} rescans for one removal`);
    const warnings = logs.filter((l) => String(l.msg).startsWith('device directories not watched'));
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    mkdirSync(bus.devRoot);
    const again = new FakeUsbBus(root);
    await waitUntil(() => watcher.counts.opened > opened, 2000, 'the watch opened again');
    const before = changes();
    again.plug(X3.lidar());
    await waitUntil(() => changes() > before, 2000, 'a plug seen after the directory came back', 5);
    assert.ok(logs.some((l) => l.msg === 'device directories watched again'));
  });

  it('a watch that errors is closed and opened again after a backoff, not at once', async () => {
    const made: Array<{ dir: string; watcher: FSWatcher }> = [];
    const watchFn = ((dir: string, options: object, listener: () => void) => {
      const watcher = watch(dir, options, listener);
      made.push({ dir, watcher });
      return watcher;
    }) as unknown as typeof watch;
    const { bus, watcher, changes } = setUp({ watchFn });
    current = watcher;
    watcher.start();
    const root = made.find((m) => m.dir === bus.devRoot)!;
    const opened = watcher.counts.opened;
    const t0 = Date.now();
    root.watcher.emit('error', Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' }));
    await waitUntil(() => watcher.counts.opened > opened, 2000, 'the watch re-opened');
    assert.ok(Date.now() - t0 >= 100, 're-opened without waiting');
    bus.plug(X3.lidar());
    await waitUntil(() => changes() > 0, 2000, 'a plug seen by the new watch', 5);
  });
});
