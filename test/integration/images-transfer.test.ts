import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Contract } from '../helpers/contract.js';
import { docker, localTags } from '../helpers/engine-cli.js';
import { useRigAgent } from '../helpers/rig-agent.js';
import { tempDir } from '../helpers/temp.js';
import { startRegistry, type RegistryRig } from '../rig/registry.js';
import { needRig, rig } from '../setup.js';

describe('images: push, save, load, import, build, prune on the rig', function () {
  this.timeout(90_000);
  const contract = new Contract();
  let secured: RegistryRig;
  const rigAgent = useRigAgent();
  let dirs: { exportDir: string; importDir: string; buildDir: string };

  before(async function () {
    needRig(this);
    secured = await startRegistry(tempDir('rfa-reg-'), { auth: true });
  });
  after(async () => {
    await secured?.stop();
  });

  async function agent(
    o: { passwordFile?: string; keep?: number; allow?: string[]; dockerConfig?: string } = {},
  ): Promise<void> {
    const base = tempDir('rfa-img-');
    dirs = { exportDir: join(base, 'export'), importDir: join(base, 'import'), buildDir: join(base, 'build') };
    for (const d of Object.values(dirs)) mkdirSync(d);
    await rigAgent.start({
      images: {
        allow: o.allow ?? ['yahboomtechnology/*'],
        pushAllow: [`${secured.host}/**`],
        keep: o.keep ?? 3,
        ...dirs,
        ...(o.dockerConfig ? { dockerConfig: o.dockerConfig } : {}),
      },
      registries: {
        'docker.io': { mirror: rig().registry.url },
        ...(o.dockerConfig
          ? {}
          : { [secured.host]: { username: secured.username, passwordFile: o.passwordFile ?? secured.passwordFile } }),
      },
    });
  }
  const ask = (command: string, body: Record<string, unknown>, id = `${command}-${Date.now()}-${Math.random()}`) =>
    rigAgent.probe.request(rigAgent.subject.base, command, { id, ...body }, 60_000);
  const code = (r: Record<string, unknown>) => (r.ok ? 'ok' : (r.error as { code: string }).code);
  const ok = (r: Record<string, unknown>) => {
    assert.equal(r.ok, true, JSON.stringify(r));
    return r.result as Record<string, any>;
  };

  it('pushes with the registry credentials; only the new layer goes up the second time', async () => {
    await agent({ allow: ['yahboomtechnology/*', `${secured.host}/**`] });
    docker('pull', rig().fixtures.images.v339);
    docker('pull', rig().fixtures.images.v340);
    const first = `${secured.host}/yahboomtechnology/ros-foxy:3.3.9`;
    ok(await ask('tag', { source: rig().fixtures.images.v339, target: first }));
    const pushed = ok(await ask('push', { image: first }, 'push-1'));
    assert.equal(pushed.layersPushed.length, 3);
    assert.ok(pushed.bytesPushed > 2 * 1024 * 1024, JSON.stringify(pushed));
    assert.match(pushed.digest, /^sha256:/);
    assert.deepEqual(contract.commandResultProblems('push', pushed), []);
    assert.ok(
      rigAgent.probe.received.some(
        (m) => m.topic.endsWith('/events') && m.text.includes('"push.progress"') && m.text.includes('"push-1"'),
      ),
    );
    const second = `${secured.host}/yahboomtechnology/ros-foxy:3.4.0`;
    ok(await ask('tag', { source: rig().fixtures.images.v340, target: second }));
    const again = ok(await ask('push', { image: second }));
    assert.equal(again.layersPushed.length, 1, JSON.stringify(again));
    assert.equal(again.layersExisting.length, 2);
    // And the plan reads the secured registry with the same credentials.
    const plan = ok(await ask('plan', { image: second }));
    assert.deepEqual([plan.layers, plan.present], [3, 3]);
  });

  it('takes registry credentials from a Docker config.json as docker login writes it', async () => {
    const file = join(tempDir(), 'config.json');
    writeFileSync(
      file,
      JSON.stringify({
        auths: { [secured.host]: { auth: Buffer.from(`${secured.username}:${secured.password}`).toString('base64') } },
      }),
    );
    await agent({ dockerConfig: file, allow: ['yahboomtechnology/*', `${secured.host}/**`] });
    docker('pull', rig().fixtures.images.v339);
    const target = `${secured.host}/yahboomtechnology/ros-foxy:from-config-json`;
    ok(await ask('tag', { source: rig().fixtures.images.v339, target }));
    ok(await ask('push', { image: target }));
    assert.equal(ok(await ask('plan', { image: target })).layers, 3);
    assert.ok(!JSON.stringify(rigAgent.subject.logs).includes(secured.password!), 'the password leaked into the logs');
  });

  it('refuses a push the config does not allow, and a registry that refuses the credentials', async () => {
    const wrong = join(tempDir(), 'pw');
    writeFileSync(wrong, 'not-the-password');
    await agent({ passwordFile: wrong, allow: ['yahboomtechnology/*', `${secured.host}/**`] });
    docker('pull', rig().fixtures.images.v339);
    const target = `${secured.host}/yahboomtechnology/ros-foxy:nope`;
    ok(await ask('tag', { source: rig().fixtures.images.v339, target }));
    assert.equal(code(await ask('push', { image: target })), 'registry_unauthorized');
    assert.equal(
      code(await ask('plan', { image: `${secured.host}/yahboomtechnology/ros-foxy:3.3.9` })),
      'registry_unauthorized',
    );
    assert.equal(code(await ask('push', { image: 'yahboomtechnology/ros-foxy:3.3.9' })), 'not_allowed');
  });

  it('saves into the export dir and loads from the import dir; names the config does not allow are refused', async () => {
    await agent();
    docker('pull', rig().fixtures.images.v339);
    const saved = ok(await ask('save', { image: rig().fixtures.images.v339, file: 'ros-3.3.9.tar' }));
    assert.equal(saved.file, join(dirs.exportDir, 'ros-3.3.9.tar'));
    assert.equal(saved.bytes, statSync(saved.file).size);
    assert.ok(saved.bytes > 2 * 1024 * 1024);
    assert.ok(!existsSync(`${saved.file}.partial`));
    assert.equal(code(await ask('save', { image: rig().fixtures.images.v339, file: 'ros-3.3.9.tar' })), 'file_exists');
    docker('image', 'rm', rig().fixtures.images.v339);
    copyFileSync(saved.file, join(dirs.importDir, 'usb-stick.tar'));
    const loaded = ok(await ask('load', { file: 'usb-stick.tar' }));
    assert.deepEqual(loaded.loaded, [rig().fixtures.images.v339]);
    assert.deepEqual(localTags(), [rig().fixtures.images.v339]);
    docker('tag', rig().fixtures.images.v339, 'evil/backdoor:1');
    docker('save', '-o', join(dirs.importDir, 'evil.tar'), 'evil/backdoor:1');
    docker('image', 'rm', 'evil/backdoor:1');
    // The tar's names are read first: one the config does not allow refuses the whole load.
    assert.equal(code(await ask('load', { file: 'evil.tar' })), 'not_allowed');
    assert.ok(!localTags().includes('evil/backdoor:1'));
  });

  it('lists what the export dir holds and removes saved files; saves stop at images.exportMaxBytes', async () => {
    await agent();
    docker('pull', rig().fixtures.images.v339);
    const saved = ok(await ask('save', { image: rig().fixtures.images.v339, file: 'a.tar' }));
    const listed = ok(await ask('files', {}));
    assert.deepEqual(contract.commandResultProblems('files', listed), []);
    const entries = listed.files.map((f: { file: string; bytes: number }) => [f.file, f.bytes]);
    assert.deepEqual(entries, [['a.tar', saved.bytes]]);
    assert.equal(listed.bytes, saved.bytes);
    assert.equal(listed.maxBytes, 32 * 1024 ** 3);
    const removed = ok(await ask('files.remove', { file: 'a.tar' }));
    assert.deepEqual(contract.commandResultProblems('files.remove', removed), []);
    assert.equal(removed.bytes, saved.bytes);
    assert.ok(!existsSync(saved.file));
    assert.equal(code(await ask('files.remove', { file: 'a.tar' })), 'file_not_found');
    assert.equal(code(await ask('files.remove', { file: '../import' })), 'path_outside');
  });

  it('keeps every file operation inside its directory', async () => {
    await agent();
    docker('pull', rig().fixtures.images.v339);
    const image = rig().fixtures.images.v339;
    symlinkSync('/tmp', join(dirs.exportDir, 'out'));
    symlinkSync('/etc/hostname', join(dirs.importDir, 'host.tar'));
    assert.equal(code(await ask('save', { image, file: '../escape.tar' })), 'path_outside');
    assert.equal(code(await ask('save', { image, file: '/tmp/escape.tar' })), 'path_outside');
    assert.equal(code(await ask('save', { image, file: 'out/escape.tar' })), 'path_outside');
    assert.equal(code(await ask('save', { image, file: 'no/such/dir.tar' })), 'file_not_found');
    assert.equal(code(await ask('load', { file: 'host.tar' })), 'path_outside');
    assert.equal(code(await ask('load', { file: 'missing.tar' })), 'file_not_found');
    assert.equal(
      code(await ask('import', { file: '../../etc/passwd', image: 'yahboomtechnology/x:1' })),
      'path_outside',
    );
    assert.equal(code(await ask('build', { context: '..', image: 'yahboomtechnology/x:1' })), 'path_outside');
    assert.ok(!existsSync('/tmp/escape.tar'));
  });

  it('imports a root filesystem tar as an allowed image', async () => {
    await agent();
    const root = tempDir('rfa-rootfs-');
    mkdirSync(join(root, 'bin'));
    copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
    symlinkSync('busybox', join(root, 'bin', 'cat'));
    writeFileSync(join(root, 'hello.txt'), 'from a usb stick\n');
    execFileSync('tar', ['-C', root, '-cf', join(dirs.importDir, 'rootfs.tar'), '.']);
    const imported = ok(await ask('import', { file: 'rootfs.tar', image: 'yahboomtechnology/ros-foxy:imported' }));
    assert.match(imported.imageId, /^sha256:/);
    assert.equal(
      docker('run', '--rm', '--network', 'none', 'yahboomtechnology/ros-foxy:imported', '/bin/cat', '/hello.txt'),
      'from a usb stick',
    );
    assert.equal(code(await ask('import', { file: 'rootfs.tar', image: 'evil/x:1' })), 'not_allowed');
  });

  it('builds a context from the build dir with its output as progress; a broken build fails with its code', async () => {
    await agent();
    docker('pull', rig().fixtures.images.v339);
    const ctx = join(dirs.buildDir, 'lab');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'student.txt'), 'lab 3\n');
    writeFileSync(join(ctx, 'Dockerfile'), `FROM ${rig().fixtures.images.v339}\nCOPY student.txt /root/student.txt\n`);
    const built = ok(await ask('build', { context: 'lab', image: 'yahboomtechnology/ros-foxy:lab3' }, 'build-1'));
    assert.equal(built.steps, 2);
    assert.equal(
      docker('run', '--rm', '--network', 'none', 'yahboomtechnology/ros-foxy:lab3', 'cat', '/root/student.txt'),
      'lab 3',
    );
    assert.ok(
      rigAgent.probe.received.some(
        (m) => m.text.includes('"build.progress"') && m.text.includes('Step 1/2') && m.text.includes('"build-1"'),
      ),
    );
    writeFileSync(join(ctx, 'Broken.Dockerfile'), 'FROM yahboomtechnology/ros-foxy:3.3.9\nCOPY missing.txt /x\n');
    assert.equal(
      code(
        await ask('build', {
          context: 'lab',
          dockerfile: 'Broken.Dockerfile',
          image: 'yahboomtechnology/ros-foxy:broken',
        }),
      ),
      'build_failed',
    );
    assert.equal(
      code(
        await ask('build', { context: 'lab', dockerfile: '../../Dockerfile', image: 'yahboomtechnology/ros-foxy:x' }),
      ),
      'path_outside',
    );
  });

  it('prunes beyond the newest images.keep per repository, never an image in use or one it does not manage', async () => {
    await agent({ keep: 1 });
    for (const image of [rig().fixtures.images.v339, rig().fixtures.images.v340, rig().fixtures.images.crash])
      docker('pull', image);
    docker('tag', rig().fixtures.images.v339, 'other/keepme:1');
    docker('create', '--name', 'rfa-prune-user', '--network', 'none', rig().fixtures.images.v340);
    const result = ok(await ask('prune', {}));
    const removedTags = (result.removed as Array<{ tags: string[] }>).flatMap((r) => r.tags).sort();
    // crash is the newest (kept); 3.4.0 is in use (kept); 3.3.9 loses its managed name only.
    assert.deepEqual(removedTags, [rig().fixtures.images.v339]);
    assert.deepEqual(
      localTags().sort(),
      ['other/keepme:1', rig().fixtures.images.crash, rig().fixtures.images.v340].sort(),
    );
    assert.deepEqual(contract.commandResultProblems('prune', result), []);
  });
});
