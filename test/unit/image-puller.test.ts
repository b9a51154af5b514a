import assert from 'node:assert/strict';
import type { AgentConfig } from '../../agent/config/types.js';
import { AgentError } from '../../agent/core/errors.js';
import { silentLogger } from '../../agent/core/logger.js';
import type { DockerEngineLink } from '../../agent/docker/engine-link.js';
import type { ImageInventory } from '../../agent/images/image-inventory.js';
import { parseImageReference } from '../../agent/core/image-reference.js';
import { ImagePuller } from '../../agent/images/image-puller.js';
import type { Endpoint, RegistryClient, ResolvedManifest } from '../../agent/images/registry-client.js';
import { EventBus, type AgentEvent } from '../../agent/state/event-bus.js';
import type { StateStore } from '../../agent/state/state-store.js';
import { FakeEngine, type FakeOperation } from '../helpers/fake-engine.js';

const IMAGE = 'yahboomtechnology/ros-foxy:3.3.9';
const MIRROR = 'mirror.site:5000/yahboomtechnology/ros-foxy:3.3.9';

const manifest = (source: 'mirror' | 'origin'): ResolvedManifest =>
  ({
    digest: `sha256:${'a'.repeat(64)}`,
    configDigest: `sha256:${'b'.repeat(64)}`,
    layers: [{ digest: `sha256:${'c'.repeat(64)}`, size: 1000, diffId: `sha256:${'d'.repeat(64)}` }],
    source,
  }) as ResolvedManifest;

/** A puller over the fake engine; `mirror`: the site mirror serves the image (else the origin only). */
function setUp(o: { mirror?: boolean; away?: boolean } = {}) {
  const engine = new FakeEngine();
  const bus = new EventBus();
  const events: AgentEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const origin: Endpoint = { source: 'origin', baseUrl: 'https://registry-1.docker.io', pullReference: IMAGE };
  const mirror: Endpoint = { source: 'mirror', baseUrl: 'https://mirror.site:5000', pullReference: MIRROR };
  const registry = {
    manifest: async () => manifest(o.mirror ? 'mirror' : 'origin'),
    endpoints: () => (o.mirror ? [mirror, origin] : [origin]),
  } as unknown as RegistryClient;
  const link = {
    required: () => {
      if (o.away) throw new AgentError('docker_unavailable', 'the Docker engine is not available: test');
      return undefined as never;
    },
    explain: async (err: unknown) => new AgentError('docker_unresponsive', `lost: ${String(err)}`),
  } as unknown as DockerEngineLink;
  const store = {
    get: () => ({ docker: { available: !o.away, os: 'linux', arch: 'arm64' } }),
  } as unknown as StateStore;
  const inventory = { current: async () => [], localLayers: () => new Set<string>() } as unknown as ImageInventory;
  const config = { diskFactor: 2, diskReserve: 0, stallTimeout: 5 } as AgentConfig['images'];
  const puller = new ImagePuller({
    engine: link,
    api: engine,
    inventory,
    registry,
    store,
    bus,
    config,
    logger: silentLogger,
  });
  const pull = () => puller.pull(parseImageReference(IMAGE), { requestId: 'r1', progress: () => undefined });
  const ops = () => engine.calls.map((c) => c.op);
  return { engine, events, pull, ops };
}

const code = (c: string) => (err: unknown) => {
  assert.ok(err instanceof AgentError, String(err));
  assert.equal(err.code, c, err.message);
  return true;
};

describe('image puller over the Engine port', () => {
  it('from the origin: pulls, then reads the id of what it pulled', async () => {
    const { engine, events, pull, ops } = setUp();
    const result = await pull();
    assert.deepEqual(ops(), ['pullImage', 'inspectImage']);
    assert.deepEqual(engine.calls[0]!.args, [IMAGE]);
    assert.equal(result.imageId, engine.images.get(IMAGE));
    assert.equal(result.source, 'origin');
    assert.deepEqual(
      events.map((e) => e.type),
      ['pull.done'],
    );
  });

  it('through the mirror: the image gets its own name and the mirror name goes', async () => {
    const { engine, pull, ops } = setUp({ mirror: true });
    const result = await pull();
    assert.deepEqual(ops(), ['pullImage', 'tagImage', 'removeImage', 'inspectImage']);
    assert.deepEqual(engine.calls[0]!.args, [MIRROR]);
    assert.deepEqual(engine.calls[1]!.args, [MIRROR, 'yahboomtechnology/ros-foxy', '3.3.9']);
    assert.deepEqual(engine.calls[2]!.args, [MIRROR, { noprune: true }]);
    assert.deepEqual([...engine.images.keys()], [IMAGE]);
    assert.equal(result.source, 'mirror');
  });

  it('an engine away: docker_unavailable, nothing asked of the engine', async () => {
    const { engine, events, pull } = setUp({ away: true });
    await assert.rejects(pull(), code('docker_unavailable'));
    assert.deepEqual(engine.calls, []);
    assert.deepEqual(
      events.map((e) => e.type),
      ['pull.failed'],
    );
  });

  it('the engine refusing the pull: pull_failed, no image, pull.failed', async () => {
    const { engine, events, pull, ops } = setUp();
    engine.failNext('pullImage', 500);
    await assert.rejects(pull(), code('pull_failed'));
    assert.deepEqual(ops(), ['pullImage']);
    assert.equal(engine.images.size, 0);
    assert.equal(events.at(-1)!.type, 'pull.failed');
  });

  it('an error in the pull stream is classified by its words (disk full), and no image is left', async () => {
    const { engine, pull } = setUp();
    engine.streams.pullImage = [
      { id: 'c'.repeat(12), status: 'Downloading', progressDetail: { current: 10, total: 1000 } },
      { error: 'write /var/lib/docker/tmp/x: no space left on device' },
    ];
    await assert.rejects(pull(), code('disk_full'));
    assert.equal(engine.images.size, 0);
  });

  // Each engine call after the pull, failed in turn: the code says the pull failed, and the
  // calls after it are not made (nothing is named or removed half-way).
  const after: Array<{ op: FakeOperation; mirror: boolean; calls: FakeOperation[]; left: string[] }> = [
    { op: 'tagImage', mirror: true, calls: ['pullImage', 'tagImage'], left: [MIRROR] },
    { op: 'inspectImage', mirror: false, calls: ['pullImage', 'inspectImage'], left: [IMAGE] },
    {
      op: 'inspectImage',
      mirror: true,
      calls: ['pullImage', 'tagImage', 'removeImage', 'inspectImage'],
      left: [IMAGE],
    },
  ];
  for (const c of after) {
    const via = c.mirror ? ' through the mirror' : '';
    it(`the engine refusing ${c.op} after a pull${via}: pull_failed saying so`, async () => {
      const { engine, pull, ops } = setUp({ mirror: c.mirror });
      engine.failNext(c.op, 500);
      await assert.rejects(pull(), (err: unknown) => {
        code('pull_failed')(err);
        assert.match((err as Error).message, /was pulled but the engine refused to .*fake engine refused/);
        return true;
      });
      assert.deepEqual(ops(), c.calls);
      assert.deepEqual([...engine.images.keys()], c.left);
    });
  }

  it('the mirror name that cannot be removed stays; the pull still succeeds', async () => {
    const { engine, pull } = setUp({ mirror: true });
    engine.failNext('removeImage', 409);
    const result = await pull();
    assert.equal(result.imageId, engine.images.get(IMAGE));
    assert.deepEqual([...engine.images.keys()].sort(), [MIRROR, IMAGE].sort());
  });
});
