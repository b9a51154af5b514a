import assert from 'node:assert/strict';
import type { ReplaceEntry, ReplaceJournal, ReplaceStep } from '../../agent/containers/replace-journal.js';
import { settleAside, settleReplacement } from '../../agent/containers/replace-recovery.js';
import { ReplaceTransaction, type Replacement } from '../../agent/containers/replace-transaction.js';
import { silentLogger } from '../../agent/core/logger.js';
import { FakeEngine } from '../helpers/fake-engine.js';

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
  return { engine, journal, tx, oldId, replacement };
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
