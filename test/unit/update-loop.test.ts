import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../agent/config/load-config.js';
import type { AgentConfig } from '../../agent/config/types.js';
import { ContainersModule, type UpdatesPort } from '../../agent/containers/containers-module.js';
import type { ReplaceJob } from '../../agent/containers/update-intents.js';
import { silentLogger } from '../../agent/core/logger.js';
import { absentDevices } from '../../agent/devices/device-resolver.js';
import { EventBus, type AgentEvent } from '../../agent/state/event-bus.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { AgentState, UpdateOutcome } from '../../agent/state/types.js';
import { Updater } from '../../agent/update/updater.js';
import { FakeEngine } from '../helpers/fake-engine.js';
import { fakeUpdates } from '../helpers/fake-updates.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';

const V1 = 'yahboomtechnology/ros-foxy:3.3.9';
const V2 = 'yahboomtechnology/ros-foxy:3.4.0';

function configFor(update: Record<string, unknown> = {}): AgentConfig {
  const dir = tempDir('rfa-unit-update-loop-');
  mkdirSync(join(dir, 'state'));
  return loadConfig({
    file: writeYaml(dir, 'config.yaml', {
      robot: { id: 'unit' },
      state: { dir: join(dir, 'state') },
      reconcile: { retry: { initial: 1, max: 4 } },
      update: { stableSeconds: 1, healthTimeout: 10, lockFile: join(dir, 'update.lock'), ...update },
      containers: { ros: { image: V1, devices: [], restart: 'unless-stopped', stopTimeout: 1 } },
    }),
    env: {},
  }).config;
}

/** The containers loop over a fake engine, started (commands wake it), with the given update/. */
function loop(config: AgentConfig, engine: FakeEngine, updates: UpdatesPort, store: StateStore, bus: EventBus) {
  const link = { available: true, onConnected: () => () => undefined, onEngineEvent: () => () => undefined };
  const inventory = {
    current: async () =>
      [...new Set(engine.images.values())].map((id) => ({
        id,
        tags: [...engine.images].filter(([, v]) => v === id).map(([k]) => k),
      })),
    refresh: async () => undefined,
  };
  return new ContainersModule({
    config,
    updates,
    engine: { ...link, required: () => assert.fail('the loop reached past the Engine port') } as never,
    api: engine,
    puller: { pull: async () => undefined } as never,
    inventory: inventory as never,
    store,
    bus,
    logger: silentLogger,
  });
}

function stateStore(): StateStore {
  const state = { devices: absentDevices(), containers: [], desired: { appliedAt: null }, update: { status: 'idle' } };
  return new StateStore(state as unknown as AgentState);
}

describe('updates through the containers loop (fake engine)', () => {
  const stoppers: Array<{ stop(): Promise<void> }> = [];
  afterEach(async () => {
    for (const s of stoppers.splice(0).reverse()) await s.stop();
  });

  it("a command's update is an intent the loop runs in its turn; the command gets the loop's outcome", async () => {
    const config = configFor();
    const engine = new FakeEngine();
    engine.addImage(V1);
    engine.addImage(V2);
    const store = stateStore();
    const bus = new EventBus();
    const events: AgentEvent[] = [];
    bus.subscribe((e) => events.push(e));
    const updater = new Updater({
      config,
      engine: { available: true, required: () => assert.fail('the update reached past the Engine port') } as never,
      api: engine,
      puller: { pull: async () => undefined } as never,
      store,
      bus,
      logger: silentLogger,
      work: () => ({ saveWork: async () => undefined }),
    });
    const containers = loop(config, engine, updater, store, bus);
    stoppers.push(updater, containers);
    await updater.start();
    await containers.start();
    await waitUntil(() => engine.byName('ros')?.status === 'running', 5_000, 'ros running');

    let pinned = false;
    const job: ReplaceJob = {
      container: 'ros',
      image: V2,
      reason: 'command',
      force: true,
      requestId: 'upd-1',
      pin: async () => void (pinned = true),
    };
    const result = await containers.requestUpdate(job);
    assert.equal(result.status, 'done', JSON.stringify(result));
    assert.equal(pinned, true);
    assert.equal(engine.byName('ros')?.image, V2);
    assert.equal(engine.byName('ros')?.status, 'running');
    const types = events.filter((e) => e.id === 'upd-1').map((e) => e.type);
    assert.deepEqual(types, ['update.started', 'update.verified', 'update.done']);

    // The same image again: up to date, answered by the loop without a swap.
    const again = await containers.requestUpdate({ ...job, requestId: 'upd-2' });
    assert.equal(again.status, 'up_to_date');
    assert.equal(events.filter((e) => e.type === 'update.started').length, 1);
  });

  it('a stop by command while an update runs waits for the update, then stops the new container', async () => {
    const config = configFor();
    const engine = new FakeEngine();
    engine.addImage(V1);
    engine.addImage(V2);
    const store = stateStore();
    const bus = new EventBus();
    const order: string[] = [];
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let replacing = false;
    const updates = fakeUpdates({
      replace: async (j): Promise<UpdateOutcome> => {
        replacing = true;
        order.push('replace began');
        await held;
        // As the real replacement would: the image pinned, the new container under the name.
        await j.pin?.();
        const old = engine.byName('ros')!;
        await engine.stopContainer(old.id);
        await engine.removeContainer(old.id);
        const id = await containers.executor.create('ros', j.image, j.image, []);
        await engine.startContainer(id);
        order.push('replace ended');
        return { status: 'done', container: 'ros', from: V1, to: j.image, at: new Date().toISOString() };
      },
    });
    const containers = loop(config, engine, updates, store, bus);
    stoppers.push(containers);
    await containers.start();
    await waitUntil(() => engine.byName('ros')?.status === 'running', 5_000, 'ros running');

    const pin = () => containers.pinImage('ros', V2);
    const update = containers.requestUpdate({ container: 'ros', image: V2, reason: 'command', force: true, pin });
    await waitUntil(() => replacing, 5_000, 'the replacement running');
    const stop = containers.stopByCommand('ros').then((s) => {
      order.push('stop answered');
      return s;
    });
    // Given every chance to run: the stop waits in the loop's queue behind the update.
    for (let i = 0; i < 20; i += 1) await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, ['replace began']);
    release();
    assert.equal((await update).status, 'done');
    const stopped = await stop;
    assert.deepEqual(order, ['replace began', 'replace ended', 'stop answered']);
    assert.equal(engine.byName('ros')?.image, V2);
    assert.equal(engine.byName('ros')?.status, 'exited');
    assert.equal(stopped.state, 'exited');
  });
  it('an update of a container stopped by command is refused at once, not left waiting; nothing changed', async () => {
    const config = configFor();
    const engine = new FakeEngine();
    engine.addImage(V1);
    engine.addImage(V2);
    let replaced = 0;
    const updates = fakeUpdates({
      replace: async (j) => {
        replaced += 1;
        return { status: 'done', container: 'ros', from: V1, to: j.image, at: new Date().toISOString() };
      },
    });
    const containers = loop(config, engine, updates, stateStore(), new EventBus());
    stoppers.push(containers);
    await containers.start();
    await waitUntil(() => engine.byName('ros')?.status === 'running', 5_000, 'ros running');
    await containers.stopByCommand('ros');
    let pinned = false;
    const pin = async () => void (pinned = true);
    await assert.rejects(
      containers.requestUpdate({ container: 'ros', image: V2, reason: 'command', force: true, pin }),
      { code: 'container_stopped' },
    );
    assert.equal(replaced, 0);
    assert.equal(pinned, false);
    assert.equal(engine.byName('ros')?.image, V1);
  });

  it('while the inhibit lock holds an update back only the lock file is looked at, not the engine; it swaps when the lock goes', async () => {
    const config = configFor();
    const engine = new FakeEngine();
    engine.addImage(V1);
    engine.addImage(V2);
    let locked = true;
    let replaced = 0;
    const updates = fakeUpdates({
      replace: async (j) => {
        replaced += 1;
        return { status: 'done', container: 'ros', from: V1, to: j.image, at: new Date().toISOString() };
      },
    });
    const held = { ...updates, gate: () => ({ windowOpen: true, nextWindow: null, locked }) };
    const containers = loop(config, engine, held, stateStore(), new EventBus());
    stoppers.push(containers);
    await containers.start();
    await waitUntil(() => engine.byName('ros')?.status === 'running', 5_000, 'ros running');
    const outcome = containers.updateNow({ container: 'ros', image: V2, reason: 'command', force: true });
    // Awaited below; if an assertion fails first, the stop's refusal of it is not a second failure.
    outcome.catch(() => undefined);
    // The first pass finds the lock and holds the swap; then seconds pass under it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const listed = () => engine.calls.filter((c) => c.op === 'listContainers').length;
    const before = listed();
    await new Promise((resolve) => setTimeout(resolve, 2_200));
    // A lock may be held for hours (update.lockMaxWait up to a day): a pass of the loop (the
    // engine's containers and images) each second for all that time would be work for nothing.
    assert.equal(listed(), before, 'the loop asked the engine while only the lock file could change');
    assert.equal(replaced, 0);
    locked = false;
    assert.equal((await outcome).status, 'done');
    assert.equal(replaced, 1);
  });
});
