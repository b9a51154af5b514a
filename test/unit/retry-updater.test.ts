import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../agent/config/load-config.js';
import { LABELS } from '../../agent/containers/container-spec.js';
import { AgentError } from '../../agent/core/errors.js';
import { silentLogger } from '../../agent/core/logger.js';
import { EventBus } from '../../agent/state/event-bus.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { AgentState } from '../../agent/state/types.js';
import { Updater } from '../../agent/update/updater.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';

const IMAGE = 'yahboomtechnology/ros-foxy:3.3.9';

describe('retry: a failed background update backs off (update.retry, injected clock)', () => {
  let updater: Updater | undefined;
  afterEach(async () => updater?.stop());

  it('is not begun again before each retry time, the delay doubles to its cap, and a success starts it over', async () => {
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
        return [{ Id: 'c1', Names: ['/ros'], Image: IMAGE, ImageID: 'sha256:1', Labels: { [LABELS.managed]: 'true', [LABELS.name]: 'ros', [LABELS.image]: IMAGE } }];
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
      containers: () => ({
        executor: {} as never,
        specOf: () => config.containers.ros!,
        desiredContainers: () => [],
        requestReconcile: () => undefined,
        noteFailure: (_name: string, _action: string, err: unknown) => void failures.push((err as Error).message),
      }),
      work: () => ({ saveWork: async () => undefined }),
      now: () => clock,
    });
    const u = updater;
    /** Asks as the loop does on every pass; resolves once that attempt (if any) has ended. */
    const ask = async (): Promise<boolean> => {
      const before = looks;
      u.startInBackground('ros', IMAGE);
      if (!u.busy.has('ros')) return false;
      await waitUntil(() => !u.busy.has('ros'), 2_000, 'the attempt to end');
      return looks > before;
    };

    assert.equal(await ask(), true, 'the first attempt');
    // Each delay lies in the upper half of its window: 15-30 s, 30-60 s, then 60-120 s (the cap).
    const windows: Array<[number, number]> = [[15_000, 30_000], [30_000, 60_000], [60_000, 120_000], [60_000, 120_000]];
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
