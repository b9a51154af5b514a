import assert from 'node:assert/strict';
import type { ReplaceEntry, ReplaceJournal, ReplaceStep } from '../../agent/containers/replace-journal.js';
import { leftAside, settleAside, settleReplacement } from '../../agent/containers/replace-recovery.js';
import { ReplaceTransaction, type Replacement } from '../../agent/containers/replace-transaction.js';
import { silentLogger } from '../../agent/core/logger.js';
import { FakeEngine, type FakeOperation } from '../helpers/fake-engine.js';

const V1 = 'ros:1';
const V2 = 'ros:2';
const LABELS = { 'io.robot-agent.managed': 'true', 'io.robot-agent.name': 'ros' };

/** A journal in memory; `refuse` names a step whose write fails (a full disk). */
class MemoryJournal {
  readonly file = '(memory)';
  entry: ReplaceEntry | null = null;
  readonly written: ReplaceStep[] = [];
  refuse: ReplaceStep | undefined;
  read(): ReplaceEntry | null {
    return this.entry && structuredClone(this.entry);
  }
  write(entry: ReplaceEntry): void {
    if (entry.step === this.refuse) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    this.entry = structuredClone(entry);
    this.written.push(entry.step);
  }
  clear(): void {
    this.entry = null;
  }
}

async function setUp() {
  const engine = new FakeEngine();
  engine.addImage(V1);
  engine.addImage(V2);
  const oldId = await engine.createContainer({ name: 'ros', Image: V1, Labels: LABELS });
  await engine.startContainer(oldId);
  const journal = new MemoryJournal();
  const entry: ReplaceEntry = {
    container: 'ros',
    step: 'preparing',
    from: { image: V1, imageId: engine.images.get(V1)!, containerId: oldId },
    to: { image: V2 },
    aside: 'ros-previous-20261206T120000000Z',
    startedAt: new Date().toISOString(),
  };
  const options = { engine, journal: journal as unknown as ReplaceJournal, logger: silentLogger, what: 'update' };
  const tx = ReplaceTransaction.begin(options, entry);
  const replacement: Replacement = {
    stop: async () => void (await engine.stopContainer(oldId)),
    create: () => engine.createContainer({ name: 'ros', Image: V2, Labels: LABELS }),
    start: async (id) => void (await engine.startContainer(id)),
  };
  // An update's: its create takes the temporary name, so it is made before the stop.
  const ahead: Replacement = {
    ...replacement,
    create: (temporary) => engine.createContainer({ name: temporary ?? 'ros', Image: V2, Labels: LABELS }),
  };
  return { engine, journal, tx, oldId, replacement, ahead };
}

function only(engine: FakeEngine): { name: string; image: string; status: string } {
  const all = [...engine.containers.values()];
  assert.equal(all.length, 1, JSON.stringify(all.map((c) => [c.name, c.image, c.status])));
  return all[0]!;
}

describe('the replacement transaction (fake engine)', () => {
  it('journals each step before it is taken, removes the old container last and clears the journal', async () => {
    const { engine, journal, tx, replacement } = await setUp();
    const id = await tx.run({ ...replacement, verify: async () => undefined });
    const steps = ['preparing', 'stopping', 'renaming', 'creating', 'starting', 'verifying', 'verified'];
    assert.deepEqual(journal.written, steps);
    assert.equal(journal.entry, null);
    assert.deepEqual(only(engine), engine.containers.get(id));
    assert.equal(only(engine).image, V2);
    assert.equal(only(engine).status, 'running');
  });

  it('prepares before the stop (outside the downtime) and reports what each part of the window cost', async () => {
    const { engine, tx, replacement } = await setUp();
    const order: string[] = [];
    let parts: Record<string, number> | undefined;
    await tx.run({
      ...replacement,
      prepare: async () => {
        order.push(`prepare (${engine.calls.filter((c) => c.op === 'stopContainer').length} stops)`);
      },
      stop: async () => {
        order.push('stop');
        await replacement.stop();
      },
      started: async (_id, downtimeMs, p) => {
        parts = { ...p };
        assert.ok(downtimeMs >= 0);
      },
    });
    assert.deepEqual(order, ['prepare (0 stops)', 'stop']);
    assert.deepEqual(Object.keys(parts ?? {}).sort(), ['commitMs', 'createMs', 'renameMs', 'startMs', 'stopMs']);
  });

  it('without verification the point of no return is `removing`', async () => {
    const { journal, tx, replacement } = await setUp();
    await tx.run(replacement);
    assert.equal(journal.written.at(-1), 'removing');
  });

  for (const failing of ['stopContainer', 'renameContainer', 'createContainer', 'startContainer'] as const) {
    it(`a refused ${failing} is undone: the old container back under its name, running; no journal`, async () => {
      const { engine, journal, tx, oldId, replacement } = await setUp();
      engine.failNext(failing);
      const thrown = await tx.run(replacement).catch((e: unknown) => e);
      assert.ok(thrown instanceof Error);
      assert.equal(tx.committed, false);
      assert.equal(await tx.undo(), 'rolledback');
      assert.equal(journal.entry, null);
      const back = only(engine);
      assert.deepEqual([back.name, back.image, back.status], ['ros', V1, 'running']);
      assert.equal(engine.containers.has(oldId), true);
    });
  }

  it('a verification that fails is undone the same way, the new container removed', async () => {
    const { engine, tx, replacement } = await setUp();
    const verify = async () => assert.fail('unhealthy');
    const thrown = await tx.run({ ...replacement, verify }).catch((e: unknown) => e);
    assert.match((thrown as Error).message, /unhealthy/);
    await tx.undo();
    assert.deepEqual([only(engine).image, only(engine).status], [V1, 'running']);
  });

  it('a point of no return that cannot be journaled is not passed: the replacement is undone', async () => {
    const { engine, journal, tx, replacement } = await setUp();
    journal.refuse = 'verified';
    const thrown = await tx.run({ ...replacement, verify: async () => undefined }).catch((e: unknown) => e);
    assert.match((thrown as Error).message, /could not journal the update of ros .*stopped before verified/);
    assert.equal(tx.committed, false, 'in memory as on disk: verifying');
    await tx.undo();
    assert.deepEqual([only(engine).image, only(engine).status], [V1, 'running']);
  });

  it('an undo the engine refuses keeps the journal, for recovery to finish', async () => {
    const { engine, journal, tx, replacement } = await setUp();
    engine.failNext('startContainer', 500, ([id]) => id !== tx.entry.from.containerId);
    await tx.run(replacement).catch(() => undefined);
    engine.failNext('renameContainer');
    await assert.rejects(tx.undo());
    assert.equal(journal.entry?.step, 'rolling-back');
    assert.equal(await settleReplacement(engine, journal.entry!), 'rolledback');
    assert.deepEqual([only(engine).name, only(engine).image, only(engine).status], ['ros', V1, 'running']);
  });

  it('created ahead: the new one is made before the stop, started at once after it, then renamed', async () => {
    const { engine, journal, tx, oldId, ahead } = await setUp();
    let parts: Record<string, number> | undefined;
    let downtime = -1;
    // What the journal said at each engine call: nothing is written between the stop and the start.
    const seen: string[] = [];
    engine.before = (op) => seen.push(`${op}@${journal.entry?.step}`);
    const id = await tx.run({
      ...ahead,
      started: async (_id, ms, p) => {
        downtime = ms;
        parts = { ...p };
        assert.equal(engine.containers.get(_id)?.name, 'ros', 'started once it holds the name');
      },
      verify: async () => undefined,
    });
    assert.deepEqual(journal.written, ['preparing', 'creating', 'stopping', 'renaming', 'verifying', 'verified']);
    const mutating = seen.filter((c) => !c.startsWith('list') && !c.startsWith('inspect'));
    const aside = tx.entry.aside;
    assert.deepEqual(mutating, [
      'createContainer@creating',
      'stopContainer@stopping',
      'startContainer@stopping',
      'renameContainer@renaming',
      'renameContainer@renaming',
      'removeContainer@verified',
    ]);
    const created = engine.calls.filter((c) => c.op === 'createContainer').at(-1)!.args[0] as { name: string };
    assert.match(created.name, /^ros-next-\d{8}T\d{9}Z$/);
    assert.equal(tx.entry.next, created.name, 'the temporary name is journaled before the create');
    const renames = engine.calls.filter((c) => c.op === 'renameContainer').map((c) => c.args);
    assert.deepEqual(renames, [
      [oldId, aside],
      [id, 'ros'],
    ]);
    assert.deepEqual([only(engine).name, only(engine).image, only(engine).status], ['ros', V2, 'running']);
    assert.equal(journal.entry, null);
    // In the window only the stop and the start; the create and the renames are outside it.
    assert.equal(parts?.createMs, 0);
    assert.equal(parts?.renameMs, 0);
    assert.equal(parts?.commitMs, 0);
    assert.ok(parts?.createdBeforeMs !== undefined && parts.renamedAfterMs !== undefined, JSON.stringify(parts));
    assert.ok(downtime >= 0 && downtime <= parts!.stopMs + parts!.startMs + 1, `${downtime} ${JSON.stringify(parts)}`);
  });

  it('a recreate that commits after the stop keeps its order: stop, commit, rename, create, start', async () => {
    const { engine, journal, tx, ahead } = await setUp();
    await tx.run({ ...ahead, afterStop: async () => undefined });
    assert.deepEqual(journal.written, ['preparing', 'stopping', 'renaming', 'creating', 'starting', 'removing']);
    const created = engine.calls.filter((c) => c.op === 'createContainer').at(-1)!.args[0] as { name: string };
    assert.equal(created.name, 'ros');
  });

  const aheadFailures: Array<[FakeOperation, (args: unknown[]) => boolean, string]> = [
    ['createContainer', () => true, 'the create'],
    ['stopContainer', () => true, 'the stop'],
    ['startContainer', () => true, 'the start'],
    ['renameContainer', ([, name]) => name !== 'ros', 'the old one aside'],
    ['renameContainer', ([, name]) => name === 'ros', 'the new one to the name'],
  ];
  for (const [op, when, what] of aheadFailures) {
    it(`created ahead, a refused ${what} is undone: the old container back under its name, running`, async () => {
      const { engine, journal, tx, oldId, ahead } = await setUp();
      engine.failNext(op, 500, when);
      const thrown = await tx.run({ ...ahead, verify: async () => undefined }).catch((e: unknown) => e);
      assert.ok(thrown instanceof Error);
      assert.equal(await tx.undo(), 'rolledback');
      assert.equal(journal.entry, null);
      assert.deepEqual([only(engine).name, only(engine).image, only(engine).status], ['ros', V1, 'running']);
      assert.equal(only(engine), engine.containers.get(oldId));
    });
  }

  for (const path of ['created ahead', 'created after the stop'] as const) {
    for (const verifying of [true, false]) {
      const what = `${path}${verifying ? ', verified' : ''}`;
      it(`${what}: a crash after any engine call is settled from the journal: one ros, running`, async () => {
        const { engine, journal, tx, ahead, replacement } = await setUp();
        // What a restarted agent finds if this one died just before this call (so after the one before).
        const points: Array<{ at: string; engine: FakeEngine; entry: ReplaceEntry | null }> = [];
        engine.before = (op) => points.push({ at: op, engine: engine.clone(), entry: journal.read() });
        const r = path === 'created ahead' ? ahead : replacement;
        await tx.run({ ...r, ...(verifying ? { verify: async () => undefined } : {}) });
        engine.before = undefined;
        points.push({ at: 'the end', engine: engine.clone(), entry: journal.read() });
        assert.ok(points.length >= 6, `${points.length} points`);
        for (const point of points) {
          if (point.entry) await settleReplacement(point.engine, point.entry);
          const c = only(point.engine);
          assert.deepEqual([c.name, c.status], ['ros', 'running'], `after a crash before ${point.at}`);
        }
      });
    }
  }

  it('a temporary left with no journal: removed while the named one is there, else renamed into place', async () => {
    const { engine, oldId } = await setUp();
    const next = 'ros-next-20261206T120000000Z';
    const newId = await engine.createContainer({ name: next, Image: V2, Labels: LABELS });
    assert.deepEqual(await leftAside(engine), [{ name: 'ros', aside: next }]);
    // Made before the stop, never started: the old one runs on.
    assert.equal(await settleAside(engine.clone(), 'ros', next), 'restored');
    // Started, even: the old one still holds the name, and is what the journal-less agent knows.
    await engine.stopContainer(oldId);
    await engine.startContainer(newId);
    const both = engine.clone();
    assert.equal(await settleAside(both, 'ros', next), 'restored');
    assert.deepEqual([only(both).name, only(both).image], ['ros', V1]);
    // Died between the renames: the old one aside, the new one running under its temporary name.
    await engine.renameContainer(oldId, 'ros-previous-20261206T120000000Z');
    assert.equal(await settleAside(engine, 'ros', next), 'completed');
    const named = engine.byName('ros')!;
    assert.deepEqual([named.id, named.status], [newId, 'running']);
  });

  it('a recreate left aside with no journal: the running replacement stays, else the old one comes back', async () => {
    const { engine, oldId } = await setUp();
    const aside = 'ros-replaced-20261206T120000000Z';
    await engine.stopContainer(oldId);
    await engine.renameContainer(oldId, aside);
    const newId = await engine.createContainer({ name: 'ros', Image: V2, Labels: LABELS });
    assert.equal(await settleAside(engine.clone(), 'ros', aside), 'restored');
    await engine.startContainer(newId);
    assert.equal(await settleAside(engine, 'ros', aside), 'completed');
    assert.deepEqual([only(engine).image, only(engine).status], [V2, 'running']);
  });
});
