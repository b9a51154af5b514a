import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../agent/config/load-config.js';
import { ContainersModule, type UpdatesPort } from '../../agent/containers/containers-module.js';
import { LABELS } from '../../agent/containers/container-spec.js';
import { silentLogger } from '../../agent/core/logger.js';
import { absentDevices } from '../../agent/devices/device-resolver.js';
import { EventBus, type AgentEvent } from '../../agent/state/event-bus.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { AgentState } from '../../agent/state/types.js';
import { fakeUpdates } from '../helpers/fake-updates.js';
import { tempDir, writeYaml } from '../helpers/temp.js';

const IMAGE = 'yahboomtechnology/ros-foxy:3.3.9';

/** One managed container, ros, whose start the engine refuses while `refuse` is set. */
class OneContainerEngine {
  state = 'exited';
  refuse = true;
  starts = 0;
  constructor(private readonly specHash: string) {}

  docker(): unknown {
    const labels = {
      [LABELS.managed]: 'true',
      [LABELS.name]: 'ros',
      [LABELS.image]: IMAGE,
      [LABELS.spec]: this.specHash,
    };
    return {
      listContainers: async () => [{ Id: 'c1', Names: ['/ros'], State: this.state, Labels: labels }],
      getContainer: (id: string) => ({
        id,
        inspect: async () => ({
          Id: id,
          Name: '/ros',
          Image: 'sha256:1',
          RestartCount: 0,
          HostConfig: { Devices: [] },
          Mounts: [],
          Config: { Image: IMAGE, Labels: labels },
          State: { Status: this.state, StartedAt: '2026-11-24T00:00:00Z', ExitCode: 1 },
        }),
        start: async () => {
          this.starts += 1;
          if (this.refuse) throw Object.assign(new Error('engine refused start'), { statusCode: 500 });
          this.state = 'running';
        },
      }),
    };
  }
}

describe('retry: the containers loop backs a failing container off (injected clock)', () => {
  const modules: ContainersModule[] = [];
  afterEach(async () => {
    for (const m of modules.splice(0)) await m.stop();
  });

  function build(engine: () => OneContainerEngine | undefined, now: () => number) {
    const dir = tempDir('rfa-retry-loop-');
    mkdirSync(join(dir, 'state'));
    const { config } = loadConfig({
      file: writeYaml(dir, 'config.yaml', {
        robot: { id: 'unit' },
        state: { dir: join(dir, 'state') },
        reconcile: { retry: { initial: 1, max: 4 } },
        containers: { ros: { image: IMAGE, devices: [], restart: 'unless-stopped' } },
      }),
      env: {},
    });
    const events: AgentEvent[] = [];
    const bus = new EventBus();
    bus.subscribe((e) => events.push(e));
    const updates: UpdatesPort = fakeUpdates();
    const link = { available: true, onConnected: () => () => undefined, onEngineEvent: () => () => undefined };
    const initial = { devices: absentDevices(), containers: [], desired: { appliedAt: null } } as unknown as AgentState;
    const store = new StateStore(initial);
    const module = new ContainersModule({
      config,
      updates: updates,
      engine: { ...link, required: () => engine()!.docker() } as never,
      puller: { pull: async () => undefined } as never,
      inventory: { current: async () => [{ id: 'sha256:1', tags: [IMAGE] }], refresh: async () => undefined } as never,
      store,
      bus,
      logger: silentLogger,
      now,
    });
    modules.push(module);
    return { module, events };
  }

  it('each failed start waits a doubling delay up to its cap; a start that worked starts the ladder over', async () => {
    let clock = 5_000_000;
    let engine: OneContainerEngine | undefined;
    const hash = build(
      () => engine,
      () => clock,
    ).module.desiredContainers()[0]!.specHash;
    engine = new OneContainerEngine(hash);
    const { module: m, events } = build(
      () => engine,
      () => clock,
    );
    const delays = () => events.filter((e) => e.type === 'container.failed').map((e) => e.retryInMs as number);

    await m.reconcile();
    assert.equal(engine.starts, 1);
    // Each delay lies in the upper half of its window: 0.5-1 s, 1-2 s, then 2-4 s (the cap).
    const windows: Array<[number, number]> = [
      [500, 1000],
      [1000, 2000],
      [2000, 4000],
      [2000, 4000],
    ];
    for (const [i, [low, high]] of windows.entries()) {
      const delay = delays()[i]!;
      assert.ok(delay >= low && delay <= high, `delay ${i + 1} was ${delay} ms, not within ${low}-${high}`);
      clock += delay - 1;
      await m.reconcile();
      assert.equal(engine.starts, i + 1, `start ${i + 2} tried before its time`);
      clock += 1;
      await m.reconcile();
      assert.equal(engine.starts, i + 2, `start ${i + 2} not tried at its time`);
    }
    // The engine takes it: running, in sync, no error left.
    engine.refuse = false;
    clock += delays()[4]!;
    await m.reconcile();
    assert.equal(engine.state, 'running');
    assert.equal(m.list()[0]?.inSync, true);
    assert.equal(m.list()[0]?.error, undefined);
    // It exits and the engine refuses again: the first step of the ladder, not the cap.
    engine.state = 'exited';
    engine.refuse = true;
    await m.reconcile();
    const after = delays().at(-1)!;
    assert.ok(after >= 500 && after <= 1000, `the first delay after a success was ${after} ms`);
  });
});
