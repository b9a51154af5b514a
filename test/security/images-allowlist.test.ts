import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { UpdateResult } from '../../agent/state/types.js';
import { docker, localTags } from '../helpers/engine-cli.js';
import { useRigAgent } from '../helpers/rig-agent.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { rig } from '../setup.js';

/**
 * Nothing a command does may give a name outside the allowlists, or make runnable an image
 * images.allow does not allow: tag, load, restore (issues 12.6 and 12.9).
 */
describe('security: what may run (tag, load, restore) on the rig', function () {
  this.timeout(120_000);
  const rigAgent = useRigAgent();
  let dir: string;
  const host = () => rig().registry.host;
  const ask = rigAgent.ask;
  const code = (r: Record<string, unknown>) => (r.ok ? 'ok' : (r.error as { code: string }).code);
  const idOf = (image: string) => docker('image', 'inspect', '--format', '{{.Id}}', image);

  async function agent(doc: Record<string, unknown> = {}): Promise<void> {
    dir = tempDir('rfa-allow-');
    for (const d of ['export', 'import']) mkdirSync(join(dir, d));
    await rigAgent.start({
      images: {
        allow: ['yahboomtechnology/*', `${host()}/yahboomtechnology/*`],
        pushAllow: [`${host()}/fleet/**`],
        exportDir: join(dir, 'export'),
        importDir: join(dir, 'import'),
      },
      devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
      update: { stableSeconds: 1, healthTimeout: 10, lockFile: join(dir, 'no.lock') },
      ...doc,
    });
  }

  it('tag does not turn a push-only image into a runnable name (issue 12.9)', async () => {
    await agent();
    docker('pull', rig().fixtures.images.v339);
    const pushOnly = `${host()}/fleet/snapshots:from-elsewhere`;
    docker('tag', rig().fixtures.images.v339, pushOnly);
    const innocent = 'yahboomtechnology/ros-foxy:innocent';
    assert.equal(code(await ask('tag', { source: pushOnly, target: innocent })), 'not_allowed');
    assert.ok(!localTags().includes('yahboomtechnology/ros-foxy:innocent'));
    // The other way (a runnable image to a name to push) stays possible, as does runnable to runnable.
    assert.equal(code(await ask('tag', { source: rig().fixtures.images.v339, target: `${host()}/fleet/ros:1` })), 'ok');
    const copy = 'yahboomtechnology/ros-foxy:copy';
    assert.equal(code(await ask('tag', { source: rig().fixtures.images.v339, target: copy })), 'ok');
  });

  it('load of a tar naming an unmanaged local image is refused; that image keeps its name (12.6)', async () => {
    await agent();
    docker('pull', rig().fixtures.images.v339);
    docker('pull', rig().fixtures.images.v340);
    // A tar whose manifest names acc-base:1 (and an allowed name beside it).
    docker('tag', rig().fixtures.images.v339, 'acc-base:1');
    docker('save', '-o', join(dir, 'import', 'mixed.tar'), 'acc-base:1', rig().fixtures.images.v339);
    docker('image', 'rm', 'acc-base:1');
    // The robot's own, unmanaged acc-base:1.
    docker('tag', rig().fixtures.images.v340, 'acc-base:1');
    const before = idOf('acc-base:1');
    const r = await ask('load', { file: 'mixed.tar' });
    assert.equal(code(r), 'not_allowed', JSON.stringify(r));
    assert.match((r.error as { message: string }).message, /acc-base:1/);
    assert.equal(idOf('acc-base:1'), before);
    assert.ok(localTags().includes('acc-base:1'));
  });

  it('load refuses a compressed tar with a clear code', async () => {
    await agent();
    docker('pull', rig().fixtures.images.v339);
    docker('save', '-o', join(dir, 'plain.tar'), rig().fixtures.images.v339);
    execFileSync('sh', ['-c', `gzip -c '${join(dir, 'plain.tar')}' > '${join(dir, 'import', 'z.tar.gz')}'`]);
    assert.equal(code(await ask('load', { file: 'z.tar.gz' })), 'bad_archive');
  });

  it('restore runs only snapshots this robot committed, not what has their name and labels (12.9)', async () => {
    const source = `${host()}/yahboomtechnology/ros-foxy:3.3.9`;
    await agent({
      snapshots: { repository: 'localhost/robot-snapshots/ros' },
      containers: { ros: { image: source, stopTimeout: 1 } },
    });
    await waitUntil(() => rigAgent.subject.agent.store.get().containers[0]?.state === 'running', 30_000, 'ros running');
    const robot = rigAgent.subject.loaded.config.robot.id;
    // Someone else's image under the snapshot repository, with this robot's labels on it.
    const cli = rig()
      .docker.cliArgs.map((a) => `'${a}'`)
      .join(' ');
    const labels = `--label io.robot-agent.snapshot.robot=${robot} --label io.robot-agent.snapshot.container=ros`;
    const from = `printf 'FROM ${rig().fixtures.images.v340}\\n'`;
    const build = `docker ${cli} build -q ${labels} -t localhost/robot-snapshots/ros:planted - 2>/dev/null`;
    execFileSync('sh', ['-c', `${from} | ${build}`]);
    for (const image of ['localhost/robot-snapshots/ros:planted', 'localhost/robot-snapshots/ros:not-here']) {
      assert.equal(code(await ask('restore', { container: 'ros', image })), 'not_allowed', image);
    }
    // Its own snapshot restores.
    docker('exec', 'ros', 'sh', '-c', 'echo mine > /root/work.txt');
    const taken = await ask('snapshot', { container: 'ros', tag: 'mine' });
    assert.equal(code(taken), 'ok', JSON.stringify(taken));
    docker('exec', 'ros', 'sh', '-c', 'echo changed > /root/work.txt');
    const restored = await ask('restore', { container: 'ros', image: 'localhost/robot-snapshots/ros:mine' });
    assert.equal(code(restored), 'ok', JSON.stringify(restored));
    assert.equal((restored.result as UpdateResult).status, 'done', JSON.stringify(restored));
    assert.equal(docker('exec', 'ros', 'cat', '/root/work.txt'), 'mine');
  });
});
