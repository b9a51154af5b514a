import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from '../../agent/config/types.js';
import { AgentError } from '../../agent/core/errors.js';
import { ImageFiles } from '../../agent/images/image-files.js';
import { parseImageReference } from '../../agent/core/image-reference.js';
import { FakeEngine } from '../helpers/fake-engine.js';
import { tempDir } from '../helpers/temp.js';

const IMAGE = 'yahboomtechnology/ros-foxy:rootfs';

function setUp() {
  const base = tempDir();
  const dirs = { exportDir: join(base, 'export'), importDir: join(base, 'import'), buildDir: join(base, 'build') };
  for (const d of Object.values(dirs)) mkdirSync(d);
  writeFileSync(join(dirs.importDir, 'rootfs.tar'), 'not read by the fake');
  const config = {
    allow: ['yahboomtechnology/*'],
    pushAllow: [],
    stallTimeout: 60,
    diskFactor: 2.5,
    diskReserve: 0,
    keep: 3,
    ...dirs,
    exportMaxBytes: 1 << 30,
    buildNetwork: 'none',
  } as unknown as AgentConfig['images'];
  const engine = new FakeEngine();
  return { engine, dirs, files: new ImageFiles({ engine, config }) };
}

const code = (c: string) => (err: unknown) => {
  assert.ok(err instanceof AgentError, String(err));
  assert.equal(err.code, c, err.message);
  return true;
};

describe('image files over the Engine port', () => {
  it('import: the engine makes the image from the tar, and the answer is its id', async () => {
    const { engine, files } = setUp();
    const result = await files.import(parseImageReference(IMAGE), 'rootfs.tar');
    assert.deepEqual(
      engine.calls.map((c) => [c.op, ...c.args]),
      [
        ['importImage', { repo: 'yahboomtechnology/ros-foxy', tag: 'rootfs' }],
        ['inspectImage', IMAGE],
      ],
    );
    assert.equal(result.imageId, engine.images.get(IMAGE));
  });

  it('import: the engine refusing it is import_failed with its sentence, no image made', async () => {
    const { engine, files } = setUp();
    engine.failNext('importImage');
    await assert.rejects(files.import(parseImageReference(IMAGE), 'rootfs.tar'), (err: unknown) => {
      code('import_failed')(err);
      assert.match((err as Error).message, /fake engine refused importImage$/);
      return true;
    });
    assert.equal(engine.images.size, 0);
  });

  it('import: a failure in the stream is import_failed, no image made', async () => {
    const { engine, files } = setUp();
    engine.streams.importImage = [{ error: 'archive/tar: invalid tar header' }];
    await assert.rejects(files.import(parseImageReference(IMAGE), 'rootfs.tar'), code('import_failed'));
    assert.equal(engine.images.size, 0);
  });

  it('save: an image that is not here is image_not_found, and no file is left', async () => {
    const { engine, files, dirs } = setUp();
    await assert.rejects(files.save(parseImageReference(IMAGE), 'ros.tar'), code('image_not_found'));
    assert.deepEqual(
      engine.calls.map((c) => c.op),
      ['inspectImage'],
    );
    assert.deepEqual(readdirSync(dirs.exportDir), []);
  });

  it('save: writes what the engine sends; refused, nothing is left (save_failed)', async () => {
    const { engine, files, dirs } = setUp();
    engine.addImage(IMAGE);
    const saved = await files.save(parseImageReference(IMAGE), 'ros.tar');
    assert.equal(readFileSync(join(dirs.exportDir, 'ros.tar'), 'utf8'), engine.saved);
    assert.equal(saved.bytes, engine.saved.length);
    engine.failNext('saveImage');
    await assert.rejects(files.save(parseImageReference(IMAGE), 'again.tar'), (err: unknown) => {
      code('save_failed')(err);
      assert.match((err as Error).message, /again\.tar failed: fake engine refused saveImage$/);
      return true;
    });
    assert.ok(!existsSync(join(dirs.exportDir, 'again.tar')));
    assert.deepEqual(readdirSync(dirs.exportDir), ['ros.tar']);
  });
});
