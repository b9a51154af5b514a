import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { AgentConfig } from '../../agent/config/types.js';
import { buildImage } from '../../agent/images/image-builder.js';
import { DockerodeEngine } from '../../agent/docker/dockerode-engine.js';
import { ImageFiles } from '../../agent/images/image-files.js';
import { parseImageReference } from '../../agent/core/image-reference.js';
import { cleanEngine, docker, localTags } from '../helpers/engine-cli.js';
import { tempDir } from '../helpers/temp.js';
import { needRig, rig } from '../setup.js';

/**
 * Path and symlink abuse in every directory image files touch (exportDir, importDir, buildDir),
 * against the rig's engine: the attacker can write those directories (a USB stick, a local
 * user) and plants links, hard links and files where the agent (root) will write or read.
 */
describe('security: paths in exportDir, importDir and buildDir', function () {
  this.timeout(90_000);
  let dirs: { exportDir: string; importDir: string; buildDir: string };
  let outsideDir: string;
  let outside: string;
  let files: ImageFiles;
  let engine: Docker;
  const image = () => rig().fixtures.images.v339;
  const ref = () => parseImageReference(image());
  const config = (over: Partial<AgentConfig['images']> = {}): AgentConfig['images'] => ({
    allow: ['yahboomtechnology/*'],
    pushAllow: [],
    stallTimeout: 60,
    diskFactor: 2.5,
    diskReserve: 0,
    keep: 3,
    ...dirs,
    exportMaxBytes: 1 << 30,
    buildNetwork: 'none',
    ...over,
  });
  const code = async (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (err: { code?: string; message?: string }) => err.code ?? `uncoded: ${err.message}`,
    );

  before(function () {
    needRig(this);
    engine = new Docker({ socketPath: rig().docker.socketPath });
    cleanEngine();
    docker('pull', image());
  });
  after(() => {
    if (rig()) cleanEngine();
  });
  beforeEach(() => {
    const base = tempDir('rfa-sec-');
    dirs = { exportDir: join(base, 'export'), importDir: join(base, 'import'), buildDir: join(base, 'build') };
    for (const d of Object.values(dirs)) mkdirSync(d);
    // Outside every configured directory, on the same file system (so hard links are possible).
    outsideDir = join(base, 'outside');
    mkdirSync(outsideDir);
    outside = join(outsideDir, 'shadow');
    writeFileSync(outside, 'root:secret\n');
    files = new ImageFiles({ engine: new DockerodeEngine(() => engine), config: config() });
  });

  describe('exportDir (save)', () => {
    it('does not write through a symlink planted at the temp name <file>.partial (issue 12.1)', async () => {
      symlinkSync(outside, join(dirs.exportDir, 'p.tar.partial'));
      const saved = await files.save(ref(), 'p.tar');
      assert.equal(readFileSync(outside, 'utf8'), 'root:secret\n');
      assert.ok(lstatSync(saved.file).isFile(), 'p.tar must be a file of its own, not a link');
      assert.ok(saved.bytes > 1024 * 1024);
    });

    it('does not write through a hard link planted at the temp name', async () => {
      linkSync(outside, join(dirs.exportDir, 'h.tar.partial'));
      await files.save(ref(), 'h.tar');
      assert.equal(readFileSync(outside, 'utf8'), 'root:secret\n');
    });

    it('refuses a final name that is a link, even a dangling one, and creates nothing through it', async () => {
      const target = join(outsideDir, 'created-by-root.tar');
      symlinkSync(target, join(dirs.exportDir, 'dangling.tar'));
      assert.equal(await code(files.save(ref(), 'dangling.tar')), 'file_exists');
      assert.ok(!existsSync(target));
      symlinkSync(outside, join(dirs.exportDir, 'link.tar'));
      assert.equal(await code(files.save(ref(), 'link.tar')), 'file_exists');
      assert.equal(readFileSync(outside, 'utf8'), 'root:secret\n');
    });

    it('refuses a final name hard-linked to an outside file', async () => {
      linkSync(outside, join(dirs.exportDir, 'hard.tar'));
      assert.equal(await code(files.save(ref(), 'hard.tar')), 'file_exists');
      assert.equal(readFileSync(outside, 'utf8'), 'root:secret\n');
    });

    it('refuses a directory component that is a link leaving exportDir, and .. out of it', async () => {
      symlinkSync(outsideDir, join(dirs.exportDir, 'sub'));
      assert.equal(await code(files.save(ref(), 'sub/x.tar')), 'path_outside');
      assert.equal(await code(files.save(ref(), '../x.tar')), 'path_outside');
      assert.equal(await code(files.save(ref(), 'a/../../x.tar')), 'path_outside');
      assert.equal(await code(files.save(ref(), '/tmp/x.tar')), 'path_outside');
      assert.equal(await code(files.save(ref(), '.')), 'bad_path');
      assert.equal(await code(files.save(ref(), 'x\0.tar')), 'bad_path');
      assert.equal(await code(files.save(ref(), 'a'.repeat(5000))), 'bad_path');
      assert.deepEqual(readdirSync(outsideDir), ['shadow']);
    });

    it('refuses a save beyond images.exportMaxBytes before writing a byte (issue 12.10)', async () => {
      files = new ImageFiles({
        engine: new DockerodeEngine(() => engine),
        config: config({ exportMaxBytes: 1024 * 1024 }),
      });
      assert.equal(await code(files.save(ref(), 'big.tar')), 'export_full');
      assert.deepEqual(readdirSync(dirs.exportDir), []);
    });

    it('refuses a save that would eat into images.diskReserve (issue 12.10)', async () => {
      files = new ImageFiles({ engine: new DockerodeEngine(() => engine), config: config({ diskReserve: 2 ** 52 }) });
      assert.equal(await code(files.save(ref(), 'big.tar')), 'disk_full');
      assert.deepEqual(readdirSync(dirs.exportDir), []);
    });

    it('counts what is saved: a save that would pass the limit is refused; files.remove frees room', async () => {
      const first = await files.save(ref(), 'one.tar');
      const exportMaxBytes = Math.floor(first.bytes * 1.5);
      files = new ImageFiles({ engine: new DockerodeEngine(() => engine), config: config({ exportMaxBytes }) });
      assert.equal(await code(files.save(ref(), 'two.tar')), 'export_full');
      const listed = await files.list();
      assert.deepEqual(
        listed.files.map((f) => [f.file, f.bytes, f.partial]),
        [['one.tar', first.bytes, false]],
      );
      assert.equal(listed.bytes, first.bytes);
      assert.deepEqual(await files.remove('one.tar'), { file: first.file, bytes: first.bytes });
      await files.save(ref(), 'two.tar');
    });

    it('files.remove stays inside exportDir and removes a link itself, never its target', async () => {
      symlinkSync(outside, join(dirs.exportDir, 'link'));
      symlinkSync(outsideDir, join(dirs.exportDir, 'dirlink'));
      mkdirSync(join(dirs.exportDir, 'sub'));
      assert.deepEqual(await files.remove('link'), { file: join(dirs.exportDir, 'link'), bytes: 0 });
      assert.equal(readFileSync(outside, 'utf8'), 'root:secret\n');
      assert.equal(await code(files.remove('dirlink/shadow')), 'path_outside');
      assert.equal(await code(files.remove('../outside/shadow')), 'path_outside');
      assert.equal(await code(files.remove('sub')), 'bad_path');
      assert.equal(await code(files.remove('missing.tar')), 'file_not_found');
      assert.ok(existsSync(outside));
    });
  });

  describe('importDir (load, import)', () => {
    it('refuses a file hard-linked to a file outside importDir', async () => {
      linkSync(outside, join(dirs.importDir, 'stick.tar'));
      assert.equal(await code(files.load('stick.tar')), 'path_outside');
      assert.equal(await code(files.import(parseImageReference('yahboomtechnology/x:1'), 'stick.tar')), 'path_outside');
    });

    it('refuses a symlink leading out, a directory component leading out, and a directory', async () => {
      symlinkSync(outside, join(dirs.importDir, 'link.tar'));
      symlinkSync(outsideDir, join(dirs.importDir, 'sub'));
      mkdirSync(join(dirs.importDir, 'dir.tar'));
      assert.equal(await code(files.load('link.tar')), 'path_outside');
      assert.equal(await code(files.load('sub/shadow')), 'path_outside');
      assert.equal(await code(files.load('dir.tar')), 'bad_path');
      const x = parseImageReference('yahboomtechnology/x:1');
      assert.equal(await code(files.import(x, 'sub/shadow')), 'path_outside');
    });
  });

  describe('buildDir (build contexts)', () => {
    const build = (context: string, tag: string) =>
      buildImage({
        engine: new DockerodeEngine(() => engine),
        config: config(),
        ref: parseImageReference(`yahboomtechnology/ros-foxy:${tag}`),
        context,
        progress: () => undefined,
      });

    it('refuses a context holding a hard link to a file outside buildDir (tar would send its content)', async () => {
      const ctx = join(dirs.buildDir, 'lab');
      mkdirSync(ctx);
      linkSync(outside, join(ctx, 'notes.txt'));
      writeFileSync(join(ctx, 'Dockerfile'), `FROM ${image()}\nCOPY notes.txt /leak\n`);
      assert.equal(await code(build('lab', 'leak')), 'path_outside');
      assert.ok(!localTags().includes('yahboomtechnology/ros-foxy:leak'));
    });

    it('sends a symlink in the context as a link: its outside target never reaches the image', async () => {
      const ctx = join(dirs.buildDir, 'links');
      mkdirSync(ctx);
      symlinkSync(outside, join(ctx, 'notes.txt'));
      writeFileSync(join(ctx, 'Dockerfile'), `FROM ${image()}\nCOPY notes.txt /leak\n`);
      const outcome = await code(build('links', 'symlink'));
      if (outcome === 'ok') {
        const image = 'yahboomtechnology/ros-foxy:symlink';
        const run = ['run', '--rm', '--network', 'none', image, 'sh', '-c', 'cat /leak 2>/dev/null; true'];
        const content = execFileSync('docker', [...rig().docker.cliArgs, ...run]).toString();
        assert.ok(!content.includes('secret'), content);
      } else assert.equal(outcome, 'build_failed');
    });

    it('refuses a context that is a link leading out of buildDir', async () => {
      writeFileSync(join(outsideDir, 'Dockerfile'), `FROM ${image()}\n`);
      symlinkSync(outsideDir, join(dirs.buildDir, 'away'));
      assert.equal(await code(build('away', 'away')), 'path_outside');
    });
  });
});
