import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../agent/config/load-config.js';
import type { AgentConfig } from '../../agent/config/types.js';
import { ContainersModule, type UpdatesPort } from '../../agent/containers/containers-module.js';
import { silentLogger } from '../../agent/core/logger.js';
import { absentDevices } from '../../agent/devices/device-resolver.js';
import { EventBus } from '../../agent/state/event-bus.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { AgentState } from '../../agent/state/types.js';
import { Updater } from '../../agent/update/updater.js';
import { FakeEngine, type FakeContainer } from '../helpers/fake-engine.js';
import { fakeUpdates } from '../helpers/fake-updates.js';
import { tempDir, writeYaml } from '../helpers/temp.js';

const V1 = 'yahboomtechnology/ros-foxy:3.3.9';
const VENDOR_V2 = 'yahboomtechnology/ros-foxy:3.4.0';

/** What an agent killed right after journaling a step leaves: its journal and the engine as it was. */
interface CrashPoint {
  step: string;
  journal: string;
  engine: FakeEngine;
}

/** Loaded once per spec (a load checks the whole schema: slow for a unit suite); a state dir each. */
const loaded = new Map<string, AgentConfig>();
function configFor(dir: string, env: Record<string, string>): AgentConfig {
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { recursive: true });
  const key = JSON.stringify(env);
  let config = loaded.get(key);
  if (!config) {
    config = loadConfig({
      file: writeYaml(dir, 'config.yaml', {
        robot: { id: 'unit' },
        state: { dir: stateDir },
        devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
        update: { stableSeconds: 1, healthTimeout: 5, lockFile: join(dir, 'no.lock') },
        reconcile: { retry: { initial: 1, max: 4 } },
        containers: { ros: { image: V1, env, devices: [], restart: 'unless-stopped', stopTimeout: 1 } },
      }),
      env: {},
    }).config;
    loaded.set(key, config);
  }
  return { ...config, state: { ...config.state, dir: stateDir } };
}

const noUpdates: UpdatesPort = fakeUpdates();

/** The containers loop over a fake engine; no rig, no link (the port is all it touches). */
interface LoopOptions {
  onRecreateStep?: (s: string) => void;
  updates?: UpdatesPort;
  now?: () => number;
}

function loop(config: AgentConfig, engine: FakeEngine, o: LoopOptions = {}) {
  const link = {
    available: true,
    onConnected: () => () => undefined,
    onEngineEvent: () => () => undefined,
    required: () => assert.fail('the loop reached past the Engine port'),
  };
  const inventory = {
    current: async () =>
      [...new Set(engine.images.values())].map((id) => ({
        id,
        tags: [...engine.images].filter(([, v]) => v === id).map(([k]) => k),
      })),
    refresh: async () => undefined,
  };
  const state = { devices: absentDevices(), containers: [], desired: { appliedAt: null }, update: { status: 'idle' } };
  return new ContainersModule({
    config,
    updates: o.updates ?? noUpdates,
    engine: link as never,
    api: engine,
    puller: { pull: async () => undefined } as never,
    inventory: inventory as never,
    store: new StateStore(state as unknown as AgentState),
    bus: new EventBus(),
    logger: silentLogger,
    ...(o.onRecreateStep ? { onRecreateStep: o.onRecreateStep } : {}),
    ...(o.now ? { now: o.now } : {}),
  });
}

function updater(config: AgentConfig, engine: FakeEngine, onStep?: (s: string) => void) {
  return new Updater({
    config,
    engine: { available: true, required: () => assert.fail('the update flow reached past the Engine port') } as never,
    api: engine,
    puller: { pull: async () => undefined } as never,
    store: new StateStore({ update: { status: 'idle' } } as unknown as AgentState),
    bus: new EventBus(),
    logger: silentLogger,
    work: () => ({ saveWork: async () => undefined }),
    ...(onStep ? { onStep } : {}),
  });
}

/** Every container that holds or once held the name ros (moved aside ones included). */
function rosLike(engine: FakeEngine): FakeContainer[] {
  return [...engine.containers.values()].filter((c) => c.labels['io.robot-agent.name'] === 'ros');
}

function assertOneRunning(engine: FakeEngine, step: string, check: (c: FakeContainer) => boolean): void {
  const all = rosLike(engine);
  assert.equal(all.length, 1, `after a crash at ${step}: ${JSON.stringify(all.map((c) => [c.name, c.status]))}`);
  assert.equal(all[0]!.name, 'ros', `after a crash at ${step}`);
  assert.equal(all[0]!.status, 'running', `after a crash at ${step}`);
  assert.ok(check(all[0]!), `after a crash at ${step}: ${JSON.stringify(all[0])}`);
}

describe('replacing a container over the Engine port: a crash at any step leaves one, running (fake engine)', () => {
  const stoppers: Array<{ stop(): Promise<void> }> = [];
  afterEach(async () => {
    for (const s of stoppers.splice(0)) await s.stop();
  });

  it('a spec recreate cut at each journaled step is settled at the next start: one ros, new spec', async () => {
    const dir = tempDir('rfa-unit-recreate-');
    const engine = new FakeEngine();
    engine.addImage(V1);
    const first = loop(configFor(dir, { A: '1' }), engine);
    stoppers.push(first);
    await first.reconcile();
    assertOneRunning(engine, 'the first start', (c) => c.env.includes('A=1'));
    // The student's work in it: the recreate commits it and runs the new spec from the commit.
    rosLike(engine)[0]!.changes = [{ Path: '/root/work.py', Kind: 1 }];

    const points: CrashPoint[] = [];
    const config = configFor(dir, { A: '2' });
    const journal = join(config.state.dir, 'recreate-journal.json');
    const second = loop(config, engine, {
      onRecreateStep: (step) => points.push({ step, journal: readFileSync(journal, 'utf8'), engine: engine.clone() }),
    });
    stoppers.push(second);
    await second.reconcile();
    assertOneRunning(engine, 'no crash', (c) => c.env.includes('A=2') && c.image.includes(':ros-'));
    assert.equal(existsSync(journal), false, 'the journal is cleared once the recreate is done');
    const steps = ['stopping', 'renaming', 'creating', 'starting', 'removing'];
    assert.deepEqual(
      points.map((p) => p.step),
      steps.map((s) => `recreate:${s}`),
    );

    for (const point of points) {
      const after = configFor(tempDir('rfa-unit-recreate-after-'), { A: '2' });
      writeFileSync(join(after.state.dir, 'recreate-journal.json'), point.journal);
      const next = loop(after, point.engine);
      stoppers.push(next);
      await next.reconcile();
      assertOneRunning(point.engine, point.step, (c) => c.env.includes('A=2'));
      const left = existsSync(join(after.state.dir, 'recreate-journal.json'));
      assert.equal(left, false, `journal left after ${point.step}`);
    }
  });

  it("a recreate whose undo failed is settled at the loop's next pass, not only at the next start", async () => {
    const dir = tempDir('rfa-unit-recreate-unsettled-');
    const engine = new FakeEngine();
    engine.addImage(V1);
    const first = loop(configFor(dir, { A: '1' }), engine);
    stoppers.push(first);
    await first.reconcile();
    const oldId = rosLike(engine)[0]!.id;
    const config = configFor(dir, { A: '3' });
    let clock = Date.now();
    const second = loop(config, engine, { now: () => clock });
    stoppers.push(second);
    // The new container does not start, and the old one cannot be renamed back at once.
    engine.failNext('startContainer', 500, ([id]) => id !== oldId);
    engine.failNext('renameContainer', 500, ([id, name]) => id === oldId && name === 'ros');
    await second.reconcile();
    assert.ok(existsSync(join(config.state.dir, 'recreate-journal.json')), 'the journal kept');
    // Past the failure's backoff (reconcile.retry.initial 1 s): the loop's next pass.
    clock += 5_000;
    await second.reconcile();
    assertOneRunning(engine, 'the next pass', (c) => c.env.includes('A=3'));
    assert.equal(existsSync(join(config.state.dir, 'recreate-journal.json')), false);
  });

  it('a <name>-next-* an update made is never scanned under it: a reconcile asked meanwhile waits its turn', async () => {
    const dir = tempDir('rfa-unit-next-busy-');
    const engine = new FakeEngine();
    engine.addImage(V1);
    engine.addImage(VENDOR_V2);
    const config = configFor(dir, {});
    const containers = loop(config, engine);
    stoppers.push(containers);
    await containers.reconcile();
    const labels = { 'io.robot-agent.managed': 'true', 'io.robot-agent.name': 'ros' };
    // A replacement runs in the loop's turn and has made its new container ahead of the stop; the
    // engine comes back meanwhile and a reconcile (with its scan for leftovers) is asked for.
    const next = 'ros-next-20261206T120000000Z';
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const replacement = containers.serially(async () => {
      await engine.createContainer({ name: next, Image: VENDOR_V2, Labels: labels });
      await held;
      // As the replacement ends: its new container leaves the temporary name.
      await engine.removeContainer(engine.byName(next)!.id);
    });
    const scan = containers.serially(() => containers.reconcile());
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(engine.byName(next), 'the scan ran under the replacement and removed its new container');
    release();
    await replacement;
    await scan;
    assertOneRunning(engine, 'after the replacement', (c) => c.image === V1);
  });

  it('a recreate journal an earlier agent wrote in its own shape is settled the same way', async () => {
    const dir = tempDir('rfa-unit-recreate-earlier-');
    const engine = new FakeEngine();
    engine.addImage(V1);
    const config = configFor(dir, { A: '2' });
    const labels = { 'io.robot-agent.managed': 'true', 'io.robot-agent.name': 'ros' };
    const aside = 'ros-replaced-20261206T120000000Z';
    const oldId = await engine.createContainer({ name: aside, Image: V1, Labels: labels });
    const newId = await engine.createContainer({ name: 'ros', Image: V1, Labels: labels });
    const earlier = { container: 'ros', step: 'starting', oldContainerId: oldId, aside, newContainerId: newId };
    writeFileSync(join(config.state.dir, 'recreate-journal.json'), JSON.stringify(earlier));
    const next = loop(config, engine);
    stoppers.push(next);
    await next.reconcile();
    assertOneRunning(engine, 'starting (earlier journal)', (c) => c.env.includes('A=2'));
    assert.equal(existsSync(join(config.state.dir, 'recreate-journal.json')), false);
  });

  const flows = [
    { crashing: false, restore: false },
    { crashing: true, restore: false },
    { crashing: false, restore: true },
  ];
  for (const { crashing, restore } of flows) {
    const what = restore ? 'a restore' : crashing ? 'an image update that rolls back' : 'an image update';
    it(`${what}, cut at each journaled step, is finished or undone by the next start: one ros, running`, async () => {
      const dir = tempDir('rfa-unit-update-');
      const engine = new FakeEngine();
      engine.addImage(V1);
      // A restore runs a snapshot this robot committed itself; an update a vendor's image.
      const V2 = restore ? 'robot/snapshots:ros-20261206T120000000Z' : VENDOR_V2;
      engine.addImage(V2);
      // A new image that dies at once: verification fails and the flow rolls back.
      if (crashing) engine.startsAs = (c) => (c.image === V2 ? 'exited' : 'running');
      const config = configFor(dir, {});
      const containers = loop(config, engine);
      stoppers.push(containers);
      await containers.reconcile();
      assertOneRunning(engine, 'the first start', (c) => c.image === V1);

      const journal = join(config.state.dir, 'update-journal.json');
      const points: CrashPoint[] = [];
      const flow = updater(config, engine, (step) => {
        points.push({ step, journal: readFileSync(journal, 'utf8'), engine: engine.clone() });
      });
      stoppers.push(flow);
      // The replacement as the loop runs it in its turn, with the loop's executor.
      const kind = restore ? { reason: 'restore' as const, ownImage: true } : { reason: 'command' as const };
      const job = { container: 'ros', image: V2, ...kind, force: true };
      const result = await flow.replace(job, { executor: containers.executor, spec: config.containers.ros! });
      assert.equal(result.status, crashing ? 'rolledback' : 'done');
      assertOneRunning(engine, 'no crash', (c) => c.image === (crashing ? V1 : V2));
      // Created ahead: `starting` is the crash point between the stop and the start (journaled
      // as `stopping`, which covers both), and the renames come after the start.
      const steps = ['preparing', 'creating', 'stopping', 'starting', 'renaming', 'verifying'];
      assert.deepEqual(
        points.map((p) => p.step),
        [...steps, crashing ? 'rolling-back' : 'verified'],
      );

      for (const point of points) {
        const after = configFor(tempDir('rfa-unit-update-after-'), {});
        writeFileSync(join(after.state.dir, 'update-journal.json'), point.journal);
        const next = updater(after, point.engine);
        stoppers.push(next);
        await next.start();
        await next.ready();
        // Past verification the update stands; before it, the old container is back.
        const image = point.step === 'verified' ? V2 : V1;
        assertOneRunning(point.engine, point.step, (c) => c.image === image);
        const left = existsSync(join(after.state.dir, 'update-journal.json'));
        assert.equal(left, false, `journal left after ${point.step}`);
      }

      // The journal lost while the new one is still under its temporary name: the loop's scan
      // removes it (the old one holds the name) and the loop starts the old one if it stopped.
      for (const point of points.filter((p) => ['creating', 'stopping', 'starting', 'renaming'].includes(p.step))) {
        const engineAfter = point.engine.clone();
        const next = loop(configFor(tempDir('rfa-unit-update-lost-'), {}), engineAfter);
        stoppers.push(next);
        await next.reconcile();
        assertOneRunning(engineAfter, `${point.step} (journal lost)`, (c) => c.image === V1);
      }
    });
  }
});
