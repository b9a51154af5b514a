import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mock } from 'node:test';
import { loadConfig } from '../../agent/config/load-config.js';
import { LABELS } from '../../agent/containers/container-spec.js';
import { AgentError } from '../../agent/core/errors.js';
import { silentLogger } from '../../agent/core/logger.js';
import { EventBus } from '../../agent/state/event-bus.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { AgentState } from '../../agent/state/types.js';
import { Updater } from '../../agent/update/updater.js';
import { tempDir, writeYaml } from '../helpers/temp.js';

const IMAGE = 'yahboomtechnology/ros-foxy:3.3.9';

describe('retry: a failed background update backs off (update.retry, injected clock)', () => {
  let updater: Updater | undefined;
  afterEach(async () => updater?.stop());

  it('is not begun again before its retry time, the delay doubles to its cap, a success starts it over', async () => {
    const dir = tempDir('rfa-retry-update-');
    mkdirSync(join(dir, 'state'));
    const { config } = loadConfig({
      file: writeYaml(dir, 'config.yaml', {
        robot: { id: 'unit' },
        state: { dir: join(dir, 'state') },
        update: { retry: { initial: 30, max: 120 } },
        containers: { ros: { image: IMAGE } },
      }),
      env: {},
    });
    let clock = 1_000_000;
    let failing = true;
    let looks = 0;
    // The engine as the flow sees it: listing fails (an engine error) until told otherwise; then
    // ros already runs the target, so the update ends up_to_date.
    const docker = {
      listContainers: async () => {
        looks += 1;
        if (failing) throw new AgentError('engine_error', 'the Docker engine refused to list containers');
        const labels = { [LABELS.managed]: 'true', [LABELS.name]: 'ros', [LABELS.image]: IMAGE };
        return [{ Id: 'c1', Names: ['/ros'], Image: IMAGE, ImageID: 'sha256:1', Labels: labels }];
      },
      getImage: () => ({ inspect: async () => ({ Id: 'sha256:1' }) }),
    };
    const failures: string[] = [];
    updater = new Updater({
      config,
      engine: { required: () => docker, available: true } as never,
      puller: { pull: async () => undefined } as never,
      store: new StateStore({ update: { status: 'idle' } } as unknown as AgentState),
      bus: new EventBus(),
      logger: silentLogger,
      work: () => ({ saveWork: async () => undefined }),
      now: () => clock,
    });
    const u = updater;
    /**
     * Asks as the loop does on every pass: its planner turns the update away before retryAt
     * (updateRetry), else it runs the replacement in its turn and notes a failure with the
     * update's retry message. Resolves once that attempt (if any) has ended.
     */
    const target = { executor: {} as never, spec: config.containers.ros! };
    const ask = async (): Promise<boolean> => {
      const before = looks;
      if ((u.retryAt('ros') ?? 0) > clock) return false;
      await u
        .replace({ container: 'ros', image: IMAGE, reason: 'desired' }, target)
        .catch((err: unknown) => void failures.push(u.retryMessage('ros', err).message));
      return looks > before;
    };

    assert.equal(await ask(), true, 'the first attempt');
    // Each delay lies in the upper half of its window: 15-30 s, 30-60 s, then 60-120 s (the cap).
    const windows: Array<[number, number]> = [
      [15_000, 30_000],
      [30_000, 60_000],
      [60_000, 120_000],
      [60_000, 120_000],
    ];
    for (const [low, high] of windows) {
      const at = u.retryAt('ros')!;
      assert.ok(at - clock >= low && at - clock <= high, `retry in ${at - clock} ms, not within ${low}-${high}`);
      assert.equal(await ask(), false, 'asked again at once: turned away');
      clock = at - 1;
      assert.equal(await ask(), false, 'asked just before its time: turned away');
      clock = at;
      assert.equal(await ask(), true, 'begun again at its time');
    }
    assert.equal(failures.length, 5);
    assert.match(failures[0]!, /tried again in about \d+ s/);

    // It succeeds (up to date): the backoff is gone, and the next failure starts at the first step.
    failing = false;
    clock = u.retryAt('ros')!;
    assert.equal(await ask(), true);
    assert.equal(u.retryAt('ros'), undefined);
    failing = true;
    assert.equal(await ask(), true, 'no backoff left after the success');
    const next = u.retryAt('ros')! - clock;
    assert.ok(next >= 15_000 && next <= 30_000, `after a success the first delay is ${next} ms`);
  });
});

describe('retry: an interrupted update whose recovery failed (mocked timers)', () => {
  let updater: Updater | undefined;
  afterEach(async () => {
    mock.timers.reset();
    await updater?.stop();
    updater = undefined;
  });

  it('is recovered again with backoff while the engine stays up, not only at the next start or reconnect', async () => {
    const dir = tempDir('rfa-retry-recover-');
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir);
    const { config } = loadConfig({
      file: writeYaml(dir, 'config.yaml', {
        robot: { id: 'unit' },
        state: { dir: stateDir },
        update: { retry: { initial: 30, max: 120 } },
        containers: { ros: { image: IMAGE } },
      }),
      env: {},
    });
    // Cut short while stopping the old container: recovery puts the old one back as ros.
    const journal = join(stateDir, 'update-journal.json');
    const entry = {
      container: 'ros',
      step: 'stopping',
      aside: 'ros-previous-1',
      startedAt: new Date().toISOString(),
      from: { image: IMAGE, imageId: 'sha256:1', containerId: 'old' },
      to: { image: 'yahboomtechnology/ros-foxy:3.4.0' },
    };
    writeFileSync(journal, JSON.stringify(entry));
    let failing = true;
    let looks = 0;
    const docker = {
      listContainers: async () => {
        looks += 1;
        if (failing) throw new AgentError('engine_deadline', 'the Docker engine did not list containers within 60 s');
        return [];
      },
      getContainer: () => ({ inspect: async () => ({ Name: '/ros', State: { Running: true } }) }),
    };
    mock.timers.enable({ apis: ['setTimeout'] });
    updater = new Updater({
      config,
      engine: { required: () => docker, available: true } as never,
      puller: {} as never,
      store: new StateStore({ update: { status: 'idle' } } as unknown as AgentState),
      bus: new EventBus(),
      logger: silentLogger,
      work: () => ({ saveWork: async () => undefined }),
    });
    const flush = async () => {
      for (let i = 0; i < 20; i += 1) await new Promise((r) => setImmediate(r));
    };
    await updater.start();
    await flush();
    assert.equal(looks, 1, 'recovery tried at start');
    // Each delay lies in the upper half of its window: 15-30 s, 30-60 s, then 60-120 s (the cap).
    const windows: Array<[number, number]> = [
      [15_000, 30_000],
      [30_000, 60_000],
      [60_000, 120_000],
      [60_000, 120_000],
    ];
    for (const [i, [low, high]] of windows.entries()) {
      mock.timers.tick(low - 1);
      await flush();
      assert.equal(looks, i + 1, `recovery ${i + 2} tried before ${low} ms`);
      mock.timers.tick(high - low + 1);
      await flush();
      assert.equal(looks, i + 2, `recovery ${i + 2} not tried by ${high} ms`);
    }
    assert.ok(existsSync(journal), 'the journal is kept while recovery fails');
    // The engine answers: the old container is back, the journal cleared, nothing tried after.
    failing = false;
    mock.timers.tick(120_000);
    await flush();
    assert.equal(existsSync(journal), false, 'recovered');
    const done = looks;
    mock.timers.tick(1_000_000);
    await flush();
    assert.equal(looks, done);
  });
});
