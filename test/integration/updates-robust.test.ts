import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentEvent } from '../../agent/state/event-bus.js';
import type { UpdateResult } from '../../agent/state/types.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { Contract } from '../helpers/contract.js';
import { cleanEngine, docker } from '../helpers/engine-cli.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { rosContainers, rosVersion } from '../helpers/ros-containers.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig, rig } from '../setup.js';

const SNAPSHOTS = 'localhost/robot-snapshots/ros';

/** Tags in a repository, as the engine lists them (matched here: `docker images <repo>` matches loosely). */
function tagsOf(repository: string): string[] {
  const all = docker('images', '--format', '{{.Repository}} {{.Tag}}').split('\n').filter(Boolean);
  return all
    .map((line) => line.split(' '))
    .filter(([repo]) => repo === repository)
    .map(([, tag]) => tag!);
}

/**
 * Issue 19, update side: work saved once as a snapshot of the robot's own (never a 0-byte commit
 * into the vendor's repository), rollback returns what ran, recovery when the engine comes back,
 * a backoff for failed background updates, a full state.dir refused with nothing changed, and a
 * crashed container's exit code and last lines reported.
 */
describe('updates on the rig: what they save, retry, recover and report', function () {
  this.timeout(120_000);
  const contract = new Contract();
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;
  let dir: string;
  let mountPoint: string | undefined;
  const events: Array<AgentEvent & { at: number }> = [];

  const ask = (command: string, body: Record<string, unknown>, ms = 60_000) =>
    probe!.request(subject!.base, command, { id: `${command}-${Date.now()}-${Math.random()}`, ...body }, ms);
  const code = (r: Record<string, unknown>) => (r.ok ? 'ok' : (r.error as { code: string }).code);
  const ros = () => subject?.agent.store.get().containers.find((c) => c.name === 'ros');

  async function agent(o: Record<string, any> = {}): Promise<void> {
    const r = rig();
    subject = await startAgent({
      docker: { socketPath: r.docker.socketPath },
      registries: { 'docker.io': { mirror: r.registry.url } },
      devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
      reconcile: { retry: { initial: 0.5, max: 1 } },
      images: o.images ?? {},
      snapshots: { repository: SNAPSHOTS },
      update: { stableSeconds: 2, healthTimeout: 10, lockFile: join(dir, 'update.lock'), ...o.update },
      containers: { ros: { image: r.fixtures.images.v339, stopTimeout: 1, ...o.spec } },
      ...(o.state ? { state: o.state } : {}),
    });
    subject.agent.bus.subscribe((e) => events.push({ ...e, at: Date.now() }));
    probe = await MqttProbe.connect(`mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`, { protocolVersion: 4 });
    await probe.subscribe(`${subject.base}/#`);
    await waitUntil(() => ros()?.state === 'running' && ros()?.inSync, 30_000, 'ros running');
  }

  beforeEach(function () {
    needRig(this);
    events.length = 0;
    cleanEngine();
    for (const tag of tagsOf(SNAPSHOTS)) docker('image', 'rm', '-f', `${SNAPSHOTS}:${tag}`);
    dir = tempDir('rfa-updr-');
    docker('pull', rig().fixtures.images.v339);
    docker('pull', rig().fixtures.images.v340);
  });

  afterEach(async () => {
    await probe?.close();
    await subject?.stop();
    probe = undefined;
    subject = undefined;
    if (mountPoint) {
      execFileSync('umount', ['-l', mountPoint]);
      mountPoint = undefined;
    }
    if (rig()) {
      cleanEngine();
      for (const tag of tagsOf(SNAPSHOTS)) docker('image', 'rm', '-f', `${SNAPSHOTS}:${tag}`);
    }
  });

  it('19.5/19.6: no commit unchanged; work saved as a snapshot; rollback after a restore returns it', async () => {
    const r = rig();
    const vendorTags = () =>
      tagsOf('yahboomtechnology/ros-foxy')
        .filter((t) => t.startsWith('ros-'))
        .sort();
    const before = vendorTags();
    await agent();
    // An untouched container: no commit anywhere, above all none into the vendor's repository.
    const updated = await ask('update', { container: 'ros', image: r.fixtures.images.v340 });
    assert.equal((updated.result as UpdateResult | undefined)?.status, 'done', JSON.stringify(updated));
    assert.deepEqual(vendorTags(), before);
    assert.deepEqual(tagsOf(SNAPSHOTS), []);
    assert.equal(events.filter((e) => e.type === 'container.committed').length, 0);

    // A snapshot s1 with some work, more work after it, then a restore of s1.
    docker('exec', 'ros', 'sh', '-c', 'echo one > /root/work.txt');
    assert.equal(code(await ask('snapshot', { container: 'ros', tag: 's1' })), 'ok');
    docker('exec', 'ros', 'sh', '-c', 'echo two > /root/work.txt');
    const restored = await ask('restore', { container: 'ros', image: `${SNAPSHOTS}:s1` });
    assert.equal((restored.result as UpdateResult | undefined)?.status, 'done', JSON.stringify(restored));
    assert.equal(docker('exec', 'ros', 'cat', '/root/work.txt'), 'one');
    // The work made before the restore is a snapshot of this robot, in its own repository.
    const committed = events.filter((e) => e.type === 'container.committed');
    assert.equal(committed.length, 1, JSON.stringify(committed));
    const saved = committed[0]!.image as string;
    assert.ok(saved.startsWith(`${SNAPSHOTS}:ros-`), saved);
    const label = '{{index .Config.Labels "io.robot-agent.snapshot.container"}}';
    assert.equal(docker('image', 'inspect', '-f', label, saved), 'ros');
    const listed = (await ask('snapshots', {})).result as Array<{ image: string }>;
    assert.ok(
      listed.some((s) => s.image === saved),
      JSON.stringify(listed),
    );
    assert.deepEqual(vendorTags(), before);

    // Rollback returns what ran before the restore: the work, not the bare old image.
    const back = await ask('rollback', { container: 'ros' });
    assert.equal((back.result as UpdateResult | undefined)?.status, 'done', JSON.stringify(back));
    assert.equal(docker('exec', 'ros', 'cat', '/root/work.txt'), 'two');
    assert.equal(rosVersion(), '3.4.0');
    assert.equal(rosContainers().length, 1);
  });

  it('19.5/19.8/19.13: a crash gives exit code, last lines; a retry reuses saved work; stop, start: runs', async () => {
    const r = rig();
    docker('pull', r.fixtures.images.crash);
    // Restart "no": the crashed container stays exited, so its exit code is what it exited with.
    await agent({ update: { stableSeconds: 5, healthTimeout: 12 }, spec: { restart: 'no' } });
    docker('exec', 'ros', 'sh', '-c', 'echo student-work > /root/work.txt');
    const first = await ask('update', { container: 'ros', image: r.fixtures.images.crash, force: true });
    const result = first.result as UpdateResult;
    assert.equal(result?.status, 'rolledback', JSON.stringify(first));
    assert.equal(result.exitCode, 3, JSON.stringify(result));
    assert.ok(Array.isArray(result.logs) && result.logs.length <= 20, JSON.stringify(result.logs));
    assert.ok(Buffer.byteLength(result.logs!.join('\n')) <= 4096);
    const rolled = events.find((e) => e.type === 'update.rolledback')!;
    assert.equal(rolled.exitCode, 3);
    assert.ok(Array.isArray(rolled.logs));
    assert.equal(subject!.agent.store.get().update.lastResult?.exitCode, 3);
    contract.assert('state.json', subject!.agent.store.get());
    assert.equal(tagsOf(SNAPSHOTS).length, 1, 'the work saved once');

    // The same work, asked again: the saved snapshot is reused, not committed again.
    const again = await ask('update', { container: 'ros', image: r.fixtures.images.crash, force: true });
    assert.equal((again.result as UpdateResult)?.status, 'rolledback', JSON.stringify(again));
    assert.equal(tagsOf(SNAPSHOTS).length, 1, 'no second commit of the same work');
    const commits = events.filter((e) => e.type === 'container.committed');
    assert.equal(commits.length, 2);
    assert.equal(commits[1]!.reused, true);
    assert.equal(commits[1]!.image, commits[0]!.image);
    // An edit that keeps the file's size is new work all the same: committed, not lost to a reuse.
    docker('exec', 'ros', 'sh', '-c', 'echo student-WORK > /root/work.txt');
    const third = await ask('update', { container: 'ros', image: r.fixtures.images.crash, force: true });
    assert.equal((third.result as UpdateResult)?.status, 'rolledback', JSON.stringify(third));
    assert.equal(tagsOf(SNAPSHOTS).length, 2, 'the edited work saved');
    assert.notEqual(events.filter((e) => e.type === 'container.committed')[2]?.reused, true);

    // After the rollback, stop then start: ros runs, and the answer says so.
    assert.equal(code(await ask('stop', { name: 'ros' })), 'ok');
    assert.equal(docker('inspect', '-f', '{{.State.Status}}', 'ros'), 'exited');
    const started = await ask('start', { name: 'ros' });
    assert.equal(code(started), 'ok', JSON.stringify(started));
    const status = () => docker('inspect', '-f', '{{.State.Status}}', 'ros');
    await waitUntil(() => status() === 'running', 10_000, 'ros running after start');
    assert.equal(rosVersion(), '3.3.9');
  });

  it('19.14: a background update that keeps failing backs off (update.retry), not every reconcile', async () => {
    const dead = '127.0.0.1:9/yahboomtechnology/ros-foxy:9.9.9';
    await agent({
      images: { allow: ['127.0.0.1:9/**', 'yahboomtechnology/*'] },
      update: { retry: { initial: 4, max: 8 } },
    });
    const desired = JSON.stringify({ containers: { ros: { image: dead } } });
    await probe!.client.publishAsync(`${subject!.base}/desired`, desired, { retain: true, qos: 1 });
    const first = await waitUntil(() => events.find((e) => e.type === 'update.started'), 10_000, 'a first attempt');
    const firstAt = first.at;
    // Without the backoff, the loop (reconcile.retry 0.5..1 s) begins it about once a second.
    await new Promise((res) => setTimeout(res, 14_000));
    const attempts = events.filter((e) => e.type === 'update.started' && e.at <= firstAt + 14_000).map((e) => e.at);
    assert.ok(attempts.length >= 2 && attempts.length <= 4, `attempts in 14 s: ${attempts.length}`);
    for (let i = 1; i < attempts.length; i++) {
      const gap = attempts[i]! - attempts[i - 1]!;
      assert.ok(gap >= 1900, `gap ${gap} ms`);
    }
    const failed = events.filter((e) => e.type === 'container.failed' && e.action === 'update');
    assert.ok(failed.length <= attempts.length + 1, `${failed.length} container.failed, ${attempts.length} attempts`);
    assert.match(String((failed[0]!.error as { message: string }).message), /tried again in about \d+ s/);
    assert.equal(rosVersion(), '3.3.9');
  });

  it('19.11: dockerd killed while an update verifies: once back, the swap is undone, journal cleared', async () => {
    const r = rig();
    await agent({
      update: { stableSeconds: 20, healthTimeout: 40, retry: { initial: 120, max: 240 } },
      spec: { restart: 'unless-stopped' },
    });
    const oldId = docker('inspect', '-f', '{{.Id}}', 'ros');
    const journal = join(subject!.loaded.config.state.dir, 'update-journal.json');
    const pending = ask('update', { container: 'ros', image: r.fixtures.images.v340 }, 90_000);
    await waitUntil(() => subject!.agent.store.get().update.status === 'verifying', 20_000, 'verifying');
    assert.ok(existsSync(journal));
    await r.docker.restart({ kill: true, downMs: 3000 });
    const answer = await pending;
    assert.notEqual((answer.result as UpdateResult | undefined)?.status, 'done', JSON.stringify(answer));
    const recovered = await waitUntil(() => events.find((e) => e.type === 'update.recovered'), 30_000, 'recovered');
    assert.equal(recovered.outcome, 'rolledback');
    assert.ok(!existsSync(journal), 'journal cleared');
    await waitUntil(
      () => {
        const all = rosContainers();
        return all.length === 1 && all[0]!.state === 'running' ? all : undefined;
      },
      20_000,
      `exactly one ros, running: ${JSON.stringify(rosContainers())}`,
    );
    assert.equal(docker('inspect', '-f', '{{.Id}}', 'ros'), oldId, 'the old container itself is back');
    assert.equal(rosVersion(), '3.3.9');
    const update = subject!.agent.store.get().update;
    assert.notEqual(update.status, 'verifying');
    assert.equal(update.lastResult?.status, 'rolledback');
  });

  it('19.12: a full state.dir refuses update (disk_full) and snapshot; nothing changed, no image left', async () => {
    const r = rig();
    mountPoint = tempDir('rfa-smallstate-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
    const state = join(mountPoint, 'state');
    mkdirSync(state, { mode: 0o700 });
    await agent({ state: { dir: state } });
    docker('exec', 'ros', 'sh', '-c', 'echo student-work > /root/work.txt');
    const oldId = docker('inspect', '-f', '{{.Id}}', 'ros');
    const fill = join(mountPoint, 'fill');
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${fill}`, 'bs=4k'], { stdio: 'ignore' });
    } catch {
      // dd stops at ENOSPC: the disk is full, as wanted.
    }
    const refused = await ask('update', { container: 'ros', image: r.fixtures.images.v340 });
    assert.equal(code(refused), 'disk_full', JSON.stringify(refused));
    const update = subject!.agent.store.get().update;
    assert.equal(update.status, 'failed');
    assert.equal(update.lastResult?.error?.code, 'disk_full');
    assert.equal(docker('inspect', '-f', '{{.Id}}', 'ros'), oldId);
    assert.equal(docker('inspect', '-f', '{{.State.Status}}', 'ros'), 'running');
    assert.deepEqual(
      rosContainers().map((c) => c.name),
      ['ros'],
    );
    assert.deepEqual(tagsOf(SNAPSHOTS), [], 'no commit for an update that was refused');
    assert.ok(!existsSync(join(state, 'update-journal.json')));
    // Refused, so not pinned either: the loop does not take it up later by itself.
    assert.equal(ros()?.image, r.fixtures.images.v339);

    const snap = await ask('snapshot', { container: 'ros', tag: 'full' });
    assert.equal(code(snap), 'disk_full', JSON.stringify(snap));
    assert.match((snap.error as { message: string }).message, /removed/);
    assert.deepEqual(tagsOf(SNAPSHOTS), [], 'a snapshot that could not be recorded is not left behind');
    const failed = events.find((e) => e.type === 'snapshot.failed')!;
    assert.equal(failed.kept, false);

    // Space again: the same requests go through; nothing was stuck.
    rmSync(fill);
    const done = await ask('update', { container: 'ros', image: r.fixtures.images.v340 });
    assert.equal((done.result as UpdateResult | undefined)?.status, 'done', JSON.stringify(done));
    assert.equal(rosVersion(), '3.4.0');
  });
});
