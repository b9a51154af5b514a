import assert from 'node:assert/strict';
import type { AgentConfig } from '../../agent/config/types.js';
import { LABELS } from '../../agent/containers/container-spec.js';
import { AgentError } from '../../agent/core/errors.js';
import { silentLogger } from '../../agent/core/logger.js';
import type { RegistryClient } from '../../agent/images/registry-client.js';
import { SNAPSHOT_LABELS, SnapshotRecords } from '../../agent/snapshot/snapshot-records.js';
import { Snapshotter } from '../../agent/snapshot/snapshotter.js';
import { EventBus, type AgentEvent } from '../../agent/state/event-bus.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { AgentState } from '../../agent/state/types.js';
import { FakeEngine, type FakeOperation } from '../helpers/fake-engine.js';
import { tempDir } from '../helpers/temp.js';

const SOURCE = 'yahboomtechnology/ros-foxy:3.3.9';
const REPOSITORY = 'registry.site/robots/snapshots';
const TAG = `${REPOSITORY}:t1`;

/** Records whose next save fails as a full state directory does. */
class FullRecords extends SnapshotRecords {
  full = false;
  override async save(present?: Set<string>): Promise<void> {
    if (this.full) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    return super.save(present);
  }
}

/** A snapshotter over the fake engine, with one managed container "ros" whose work is one file. */
async function setUp() {
  const engine = new FakeEngine();
  const sourceId = engine.addImage(SOURCE);
  engine.imageInfo.set(sourceId, {
    labels: {},
    parentId: '',
    created: 1_700_000_000,
    size: 1000,
    layerSize: 1000,
    layers: ['sha256:base'],
    digests: [`yahboomtechnology/ros-foxy@sha256:${'e'.repeat(64)}`],
  });
  const labels = { [LABELS.managed]: 'true', [LABELS.name]: 'ros', [LABELS.image]: SOURCE };
  const id = await engine.createContainer({ name: 'ros', Image: SOURCE, Labels: labels });
  await engine.startContainer(id);
  const c = engine.containers.get(id)!;
  c.changes = [{ Path: '/root/work.txt', Kind: 1 }];
  c.files = { '/root/work.txt': 'twelve bytes' };
  c.sizeRw = 12;
  const bus = new EventBus();
  const events: AgentEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const records = new FullRecords(tempDir());
  const store = new StateStore({ snapshots: [] } as unknown as AgentState);
  const config = {
    snapshots: { repository: REPOSITORY, keep: 3, pause: false, containers: [], push: false },
    images: { pushAllow: [] },
    robot: { id: 'robot-7' },
  } as unknown as Pick<AgentConfig, 'snapshots' | 'images' | 'robot'>;
  const snapshotter = new Snapshotter({
    config,
    engine,
    registry: {} as RegistryClient,
    bus,
    store,
    logger: silentLogger,
    records,
    specOf: () => ({}),
    protectedImages: () => new Set(),
  });
  engine.calls.length = 0;
  const ops = () => engine.calls.map((x) => x.op);
  return { engine, snapshotter, events, records, store, id, sourceId, ops };
}

const code = (c: string) => (err: unknown) => {
  assert.ok(err instanceof AgentError, String(err));
  assert.equal(err.code, c, err.message);
  return true;
};

/** Fails the n-th call (from 1) of op. */
function failNth(engine: FakeEngine, op: FakeOperation, n: number, status = 500): void {
  let seen = 0;
  engine.failNext(op, status, () => ++seen === n);
}

describe('snapshotter over the Engine port', () => {
  it('take: checks, reads the container, commits with its labels, then records and lists it', async () => {
    const { engine, snapshotter, events, records, store, id, sourceId, ops } = await setUp();
    const result = await snapshotter.take({ container: 'ros', tag: 't1' });
    // Every check before the commit; what follows it reads what the commit made.
    assert.deepEqual(ops().slice(0, 7), [
      'inspectImage', // the tag is free
      'listContainers', // the managed container named ros
      'inspectContainer', // with SizeRw
      'containerChanges',
      'inspectImage', // the source's digest
      'commitContainer',
      'inspectImage', // what the commit made
    ]);
    assert.deepEqual(engine.calls[2]!.args, [id, { size: true }]);
    const commit = engine.calls[5]!.args[1] as { repo: string; tag: string; pause: boolean; changes: string };
    assert.equal(commit.repo, REPOSITORY);
    assert.equal(commit.tag, 't1');
    assert.equal(commit.pause, false);
    const snapshot = await engine.inspectImage(TAG);
    assert.equal(result.id, snapshot!.Id);
    assert.equal(result.image, TAG);
    assert.equal(result.layerBytes, 12);
    const labels = snapshot!.Config!.Labels!;
    assert.equal(labels[SNAPSHOT_LABELS.robot], 'robot-7');
    assert.equal(labels[SNAPSHOT_LABELS.container], 'ros');
    assert.equal(labels[SNAPSHOT_LABELS.sourceImage], SOURCE);
    assert.equal(labels[SNAPSHOT_LABELS.sourceDigest], `yahboomtechnology/ros-foxy@sha256:${'e'.repeat(64)}`);
    assert.ok(records.committedHere(result.id));
    assert.deepEqual(
      store.get().snapshots.map((s) => s.image),
      [TAG],
    );
    assert.equal(events.at(-1)!.type, 'snapshot.done');
    assert.ok(engine.images.get(SOURCE) === sourceId);
  });

  it('a tag that exists already: snapshot_exists before anything else is asked', async () => {
    const { engine, snapshotter, ops } = await setUp();
    engine.addImage(TAG);
    await assert.rejects(snapshotter.take({ container: 'ros', tag: 't1' }), code('snapshot_exists'));
    assert.deepEqual(ops(), ['inspectImage']);
  });

  it('a container that is not there: not_found, nothing committed', async () => {
    const { engine, snapshotter } = await setUp();
    engine.containers.clear();
    await assert.rejects(snapshotter.take({ container: 'ros', tag: 't1' }), code('not_found'));
    assert.ok(!engine.images.has(TAG));
  });

  // A refusal at each engine call before the commit: the snapshot fails in its own code, the
  // engine's sentence in the message, and nothing is committed or recorded.
  const before: Array<[FakeOperation, number, string]> = [
    ['listContainers', 1, 'snapshot_failed'],
    ['inspectContainer', 1, 'snapshot_failed'],
    ['containerChanges', 1, 'snapshot_failed'],
    ['inspectImage', 2, 'snapshot_failed'],
    ['commitContainer', 1, 'commit_failed'],
  ];
  for (const [op, nth, expected] of before) {
    it(`take: the engine refusing ${op}: ${expected}, nothing committed, snapshot.failed`, async () => {
      const { engine, snapshotter, events, store } = await setUp();
      const images = new Map(engine.images);
      failNth(engine, op, nth);
      await assert.rejects(snapshotter.take({ container: 'ros', tag: 't1' }), (err: unknown) => {
        code(expected)(err);
        assert.match((err as Error).message, /fake engine refused/);
        return true;
      });
      assert.deepEqual(engine.images, images);
      assert.ok(!engine.calls.some((c) => c.op === 'removeImage'));
      assert.deepEqual(store.get().snapshots, []);
      const failed = events.at(-1)!;
      assert.equal(failed.type, 'snapshot.failed');
      assert.equal((failed.error as { code: string }).code, expected);
    });
  }

  it('take: a refusal after the commit keeps the commit, recorded, and the answer names it', async () => {
    const { engine, snapshotter, events, records } = await setUp();
    engine.failNext('imageHistory');
    await assert.rejects(snapshotter.take({ container: 'ros', tag: 't1' }), (err: unknown) => {
      code('snapshot_failed')(err);
      assert.match((err as Error).message, /was committed and is kept on this robot/);
      return true;
    });
    const id = engine.images.get(TAG)!;
    assert.ok(id && records.committedHere(id));
    const failed = events.at(-1)!;
    assert.equal(failed.imageId, id);
    assert.equal(failed.kept, true);
  });

  it('take: a commit that cannot be recorded (state dir full) is removed again: disk_full', async () => {
    const { engine, snapshotter, records } = await setUp();
    records.full = true;
    await assert.rejects(snapshotter.take({ container: 'ros', tag: 't1' }), code('disk_full'));
    assert.ok(!engine.images.has(TAG));
    assert.deepEqual(
      engine.calls.filter((c) => c.op === 'removeImage').map((c) => c.args[0]),
      [TAG],
    );
  });

  it('saveWork: an unchanged container commits nothing', async () => {
    const { engine, snapshotter, id, ops } = await setUp();
    engine.containers.get(id)!.changes = [];
    assert.equal(await snapshotter.saveWork('ros', id, 'the update to 3.4.0'), undefined);
    assert.deepEqual(ops(), ['inspectContainer', 'containerChanges']);
  });

  it('saveWork: commits the work once; the same work again is reused, read by content', async () => {
    const { engine, snapshotter, events, id } = await setUp();
    const first = await snapshotter.saveWork('ros', id, 'the update to 3.4.0');
    assert.equal(first?.reused, false);
    assert.ok(engine.calls.some((c) => c.op === 'containerArchive' && c.args[1] === '/root/work.txt'));
    const second = await snapshotter.saveWork('ros', id, 'the update to 3.4.0');
    assert.deepEqual(second, { image: first!.image, id: first!.id, reused: true });
    assert.equal(engine.calls.filter((c) => c.op === 'commitContainer').length, 1);
    // Same size, other bytes: other work, committed again.
    engine.containers.get(id)!.files = { '/root/work.txt': 'twelve BYTES' };
    const third = await snapshotter.saveWork('ros', id, 'the update to 3.4.0');
    assert.equal(third?.reused, false);
    assert.deepEqual(
      events.filter((e) => e.type === 'container.committed').map((e) => e.reused ?? false),
      [false, true, false],
    );
  });

  it('saveWork: the engine refusing the commit is commit_failed, saying nothing was changed', async () => {
    const { engine, snapshotter, id } = await setUp();
    const images = new Map(engine.images);
    engine.failNext('commitContainer');
    await assert.rejects(snapshotter.saveWork('ros', id, 'the update to 3.4.0'), (err: unknown) => {
      code('commit_failed')(err);
      assert.match((err as Error).message, /nothing was changed: fake engine refused commitContainer/);
      return true;
    });
    assert.deepEqual(engine.images, images);
  });
});
