import assert from 'node:assert/strict';
import type { AgentConfig } from '../../agent/config/types.js';
import { AgentError } from '../../agent/core/errors.js';
import { pushImage } from '../../agent/images/image-pusher.js';
import { parseImageReference } from '../../agent/core/image-reference.js';
import type { RegistryClient } from '../../agent/images/registry-client.js';
import { FakeEngine } from '../helpers/fake-engine.js';

const IMAGE = 'registry.site/robots/snapshots:robot-7-1';
const L1 = 'a'.repeat(12);
const L2 = 'b'.repeat(12);

function setUp() {
  const engine = new FakeEngine();
  const registry = {
    credentials: () => ({ username: 'robot', password: 'secret' }),
  } as unknown as RegistryClient;
  const config = { stallTimeout: 5 } as AgentConfig['images'];
  const push = () =>
    pushImage({ engine, registry, config, ref: parseImageReference(IMAGE), progress: () => undefined });
  return { engine, push };
}

const code = (c: string) => (err: unknown) => {
  assert.ok(err instanceof AgentError, String(err));
  assert.equal(err.code, c, err.message);
  return true;
};

describe('image push over the Engine port', () => {
  it('checks the image is here, pushes with the credentials, and says what went up', async () => {
    const { engine, push } = setUp();
    engine.addImage(IMAGE);
    engine.streams.pushImage = [
      { id: L1, status: 'Pushing', progressDetail: { current: 50, total: 100 } },
      { id: L1, status: 'Pushed' },
      { id: L2, status: 'Layer already exists' },
      { status: 'robot-7-1: digest: sha256:ff size: 1', aux: { Tag: 'robot-7-1', Digest: 'sha256:ff', Size: 1 } },
    ];
    const result = await push();
    assert.deepEqual(
      engine.calls.map((c) => c.op),
      ['inspectImage', 'pushImage'],
    );
    assert.deepEqual(engine.calls[1]!.args, [
      IMAGE,
      {
        tag: 'robot-7-1',
        auth: { username: 'robot', password: 'secret', serveraddress: 'registry.site' },
      },
    ]);
    assert.deepEqual(result, {
      image: IMAGE,
      digest: 'sha256:ff',
      layersPushed: [L1],
      layersExisting: [L2],
      bytesPushed: 100,
    });
  });

  it('an image that is not here: image_not_found, nothing pushed', async () => {
    const { engine, push } = setUp();
    await assert.rejects(push(), code('image_not_found'));
    assert.deepEqual(
      engine.calls.map((c) => c.op),
      ['inspectImage'],
    );
  });

  it("the engine refusing the push: push_failed with the engine's sentence", async () => {
    const { engine, push } = setUp();
    engine.addImage(IMAGE);
    engine.failNext('pushImage');
    await assert.rejects(push(), (err: unknown) => {
      code('push_failed')(err);
      assert.match((err as Error).message, /the Docker engine refused the push of .*: fake engine refused pushImage$/);
      return true;
    });
  });

  it("the registry refusing in the stream: registry_unauthorized or push_failed, by the engine's words", async () => {
    const { engine, push } = setUp();
    engine.addImage(IMAGE);
    engine.streams.pushImage = [{ error: 'unauthorized: authentication required' }];
    await assert.rejects(push(), code('registry_unauthorized'));
    engine.streams.pushImage = [{ error: 'received unexpected HTTP status: 500 Internal Server Error' }];
    await assert.rejects(push(), code('push_failed'));
  });
});
