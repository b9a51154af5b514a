import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { UpdateResult } from '../../agent/state/types.js';
import { Contract } from '../helpers/contract.js';
import { docker, dockerAt } from '../helpers/engine-cli.js';
import { useRigAgent } from '../helpers/rig-agent.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { removeDockerDir, startDockerd } from '../rig/dockerd.js';
import { startRegistry, type RegistryRig } from '../rig/registry.js';
import { needRig, rig } from '../setup.js';

describe('snapshots on the rig: commit, push, pull elsewhere, save, keep a few, restore', function () {
  this.timeout(120_000);
  const contract = new Contract();
  const rigAgent = useRigAgent();
  const events = rigAgent.events;
  let secured: RegistryRig;
  let dir: string;

  const ask = rigAgent.ask;
  const ok = (r: Record<string, unknown>) => {
    assert.equal(r.ok, true, JSON.stringify(r));
    return r.result as Record<string, any>;
  };
  const code = (r: Record<string, unknown>) => (r.ok ? 'ok' : (r.error as { code: string }).code);
  const host = () => rig().registry.host;
  /** The ROS image pulled straight from the rig registry, so a push there can mount its base layers. */
  const source = () => `${host()}/yahboomtechnology/ros-foxy:3.3.9`;

  async function agent(
    o: {
      snapshots?: Record<string, unknown>;
      pushAllow?: string[];
      registries?: Record<string, unknown>;
      exportMaxBytes?: number;
    } = {},
  ): Promise<void> {
    for (const d of ['export', 'data']) mkdirSync(join(dir, d), { recursive: true });
    await rigAgent.start({
      images: {
        allow: [`${host()}/**`, 'yahboomtechnology/*'],
        pushAllow: o.pushAllow ?? [`${host()}/fleet/**`, `${secured.host}/**`],
        exportDir: join(dir, 'export'),
        ...(o.exportMaxBytes !== undefined ? { exportMaxBytes: o.exportMaxBytes } : {}),
      },
      registries: o.registries ?? {},
      devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
      update: { stableSeconds: 1, healthTimeout: 10, lockFile: join(dir, 'no.lock') },
      snapshots: { repository: `${host()}/fleet/snapshots`, ...o.snapshots },
      containers: { ros: { image: source(), stopTimeout: 1, mounts: [`${join(dir, 'data')}:/data`] } },
    });
    await waitUntil(() => rigAgent.subject.agent.store.get().containers[0]?.state === 'running', 30_000, 'ros running');
  }

  before(async function () {
    needRig(this);
    secured = await startRegistry(tempDir('rfa-reg-'), { auth: true });
  });
  after(async () => {
    await secured?.stop();
  });
  beforeEach(() => {
    dir = tempDir('rfa-snap-');
  });

  it('commits with author, message and labels, one layer more; pushes only that layer; a clean engine pulls it with the changes; saves a tar', async () => {
    await agent();
    docker('exec', 'ros', 'sh', '-c', 'echo student-work > /root/work.txt');
    const result = ok(
      await ask('snapshot', {
        container: 'ros',
        message: 'lesson 3',
        author: 'Ada <ada@lab>',
        push: true,
        save: 'ros-lesson3.tar',
      }),
    );
    assert.deepEqual(contract.commandResultProblems('snapshot', result), []);
    const image = JSON.parse(docker('image', 'inspect', result.image))[0] as {
      Author: string;
      Comment: string;
      Config: { Labels: Record<string, string> };
      RootFS: { Layers: string[] };
    };
    const base = JSON.parse(docker('image', 'inspect', source()))[0] as { RootFS: { Layers: string[] } };
    assert.equal(image.Author, 'Ada <ada@lab>');
    assert.equal(image.Comment, 'lesson 3');
    assert.equal(image.RootFS.Layers.length, base.RootFS.Layers.length + 1);
    assert.equal(result.layers, base.RootFS.Layers.length + 1);
    const labels = image.Config.Labels;
    assert.equal(labels['io.robot-agent.snapshot.robot'], rigAgent.subject.loaded.config.robot.id);
    assert.equal(labels['io.robot-agent.snapshot.container'], 'ros');
    assert.equal(labels['io.robot-agent.snapshot.source-image'], source());
    assert.match(labels['io.robot-agent.snapshot.source-digest']!, /@sha256:/);
    assert.ok(labels['io.robot-agent.snapshot.created']);
    assert.match(
      result.image,
      new RegExp(`^${host()}/fleet/snapshots:${rigAgent.subject.loaded.config.robot.id}-\\d{8}-\\d{6}$`),
    );
    assert.deepEqual(result.excluded, [{ type: 'bind', source: join(dir, 'data'), destination: '/data' }]);

    // Only the snapshot's own layer went up: the registry had the base.
    assert.equal(result.pushed.layersPushed.length, 1, JSON.stringify(result.pushed));
    assert.ok(
      result.pushed.bytesPushed > 0 && result.pushed.bytesPushed < 64 * 1024,
      `pushed ${result.pushed.bytesPushed} bytes for a ${result.layerBytes}-byte layer`,
    );
    assert.ok(events.some((e) => e.type === 'snapshot.done' && e.image === result.image));

    const other = await startDockerd(join(tempDir('rfa-d2-'), 'd'));
    try {
      dockerAt(other.cliArgs, 'pull', result.image);
      assert.equal(dockerAt(other.cliArgs, 'run', '--rm', result.image, 'cat', '/root/work.txt'), 'student-work');
    } finally {
      await other.stop();
      removeDockerDir(join(other.dataRoot, '..'));
    }
    assert.equal(result.savedTo.file, join(dir, 'export', 'ros-lesson3.tar'));
    assert.ok(statSync(result.savedTo.file).size > 1000);
    const listed = ok(await ask('snapshots', {}));
    assert.deepEqual(
      listed.map((s: { image: string }) => s.image),
      [result.image],
    );
    assert.equal(listed[0].pushed, result.image);
    assert.equal(listed[0].savedTo, result.savedTo.file);
    contract.assert('state.json', rigAgent.subject.agent.store.get());
  });

  it('keeps the newest snapshots.keep per container, never one in use; restore runs a snapshot through the update flow', async () => {
    await agent({ snapshots: { keep: 2 } });
    const take = async (tag: string, text: string) => {
      docker('exec', 'ros', 'sh', '-c', `echo ${text} > /root/work.txt`);
      return ok(await ask('snapshot', { container: 'ros', tag }));
    };
    await take('s1', 'one');
    await take('s2', 'two');
    const third = await take('s3', 'three');
    assert.deepEqual(third.removed, [`${host()}/fleet/snapshots:s1`]);

    const restored = ok(await ask('restore', { container: 'ros', image: `${host()}/fleet/snapshots:s2` }));
    assert.equal((restored as UpdateResult).status, 'done', JSON.stringify(restored));
    assert.equal(docker('exec', 'ros', 'cat', '/root/work.txt'), 'two');
    // The work the restore replaced ("three") was saved as a snapshot of ros too, and is the
    // way back (rollback), so it is kept: s3 goes as soon as s4 comes.
    const fourth = await take('s4', 'four');
    assert.deepEqual(fourth.removed, [`${host()}/fleet/snapshots:s3`]);
    const fifth = await take('s5', 'five');
    // s2 runs and the saved work is the way back: both stay although beyond the newest two.
    assert.deepEqual(fifth.removed, []);
    assert.ok(docker('image', 'inspect', `${host()}/fleet/snapshots:s2`));
    assert.equal(code(await ask('restore', { container: 'ros', image: 'evil/miner:1' })), 'not_allowed');
  });

  it('the schedule snapshots a changed container and skips an unchanged one', async () => {
    await agent({ snapshots: { schedule: '*/2 * * * * *', containers: ['ros'] } });
    const skipped = await waitUntil(
      () => events.find((e) => e.type === 'snapshot.skipped'),
      6000,
      'a skip with no changes',
    );
    assert.equal(skipped.reason, 'no changes');
    docker('exec', 'ros', 'sh', '-c', 'echo changed > /root/work.txt');
    await waitUntil(() => events.find((e) => e.type === 'snapshot.done'), 8000, 'a scheduled snapshot');
    events.length = 0;
    const again = await waitUntil(
      () => events.find((e) => e.type === 'snapshot.skipped' || e.type === 'snapshot.done'),
      6000,
      'the next round',
    );
    assert.equal(again.type, 'snapshot.skipped');
    assert.equal(again.reason, 'no changes since the last snapshot');
  });

  it('a snapshot save is confined as save is: no write through a planted link; taken names, the limit', async () => {
    await agent({ snapshots: { keep: 5 } });
    const outside = join(tempDir('rfa-outside-'), 'shadow');
    writeFileSync(outside, 'root:secret\n');
    const exportDir = join(dir, 'export');
    const snapshotsHere = () =>
      docker('image', 'ls', '--filter', 'label=io.robot-agent.snapshot.container', '-q').split('\n').filter(Boolean)
        .length;
    // The old temp name, planted as a link (issue 12.1): written through by the old code.
    symlinkSync(outside, join(exportDir, 'snap.tar.partial'));
    docker('exec', 'ros', 'sh', '-c', 'echo one > /root/work.txt');
    const saved = ok(await ask('snapshot', { container: 'ros', tag: 'saved', save: 'snap.tar' }));
    assert.equal(readFileSync(outside, 'utf8'), 'root:secret\n');
    assert.ok(lstatSync(saved.savedTo.file).isFile());
    // A final name planted as a link (even dangling) is refused before anything is committed.
    symlinkSync(join(dir, 'created-by-root.tar'), join(exportDir, 'taken.tar'));
    const before = snapshotsHere();
    assert.equal(code(await ask('snapshot', { container: 'ros', tag: 'taken', save: 'taken.tar' })), 'file_exists');
    assert.equal(snapshotsHere(), before);
    assert.ok(!existsSync(join(dir, 'created-by-root.tar')));
    // A limit below what the export dir holds already: refused before the commit.
    await rigAgent.stop();
    await agent({ exportMaxBytes: 1024 });
    docker('exec', 'ros', 'sh', '-c', 'echo two > /root/work.txt');
    const committed = snapshotsHere();
    const full = await ask('snapshot', { container: 'ros', tag: 'full', save: 'full.tar' });
    assert.equal(code(full), 'export_full', JSON.stringify(full));
    assert.equal(snapshotsHere(), committed);
    assert.ok(!existsSync(join(exportDir, 'full.tar')));
  });

  it('bad input gets a code and commits nothing; a registry that refuses the credentials keeps the snapshot here', async () => {
    const wrong = join(dir, 'wrong.password');
    writeFileSync(wrong, 'not-the-password\n');
    await agent({ registries: { [secured.host]: { username: secured.username, passwordFile: wrong } } });
    const snapshotsHere = () =>
      docker('image', 'ls', '--filter', 'label=io.robot-agent.snapshot.container', '-q').split('\n').filter(Boolean)
        .length;
    assert.equal(code(await ask('snapshot', { container: 'nope' })), 'unknown_container');
    assert.equal(code(await ask('snapshot', { container: 'ros', save: '../outside.tar' })), 'path_outside');
    assert.equal(code(await ask('snapshot', { container: 'ros', save: '/etc/x.tar' })), 'path_outside');
    assert.equal(code(await ask('snapshot', { container: 'ros', tag: 'bad tag' })), 'invalid_args');
    assert.equal(code(await ask('snapshot', { container: 'ros', pause: 'yes' })), 'invalid_args');
    assert.equal(snapshotsHere(), 0);

    await rigAgent.stop();
    await agent({ pushAllow: [], registries: { [secured.host]: { username: secured.username, passwordFile: wrong } } });
    assert.equal(code(await ask('snapshot', { container: 'ros', push: true })), 'not_allowed');
    assert.equal(snapshotsHere(), 0);

    await rigAgent.stop();
    await agent({
      snapshots: { repository: `${secured.host}/fleet/snapshots` },
      registries: { [secured.host]: { username: secured.username, passwordFile: wrong } },
    });
    docker('exec', 'ros', 'sh', '-c', 'echo x > /root/x');
    assert.equal(code(await ask('snapshot', { container: 'ros', push: true })), 'registry_unauthorized');
    assert.equal(snapshotsHere(), 1, 'the commit stays on the robot');
    assert.ok(events.some((e) => e.type === 'snapshot.failed'));
    assert.equal((await ask('ping', {})).ok, true);
  });
});
