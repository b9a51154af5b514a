import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentEvent } from '../../agent/state/event-bus.js';
import type { ContainerState, UpdateResult } from '../../agent/state/types.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { cleanEngine, docker } from '../helpers/engine-cli.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { rosContainers, rosVersion } from '../helpers/ros-containers.js';
import { tempDir } from '../helpers/temp.js';
import { sleep, waitUntil } from '../helpers/wait.js';
import { needRig, rig } from '../setup.js';

/**
 * The containers loop on the rig: it never spins on a step that fails, never acts on a container
 * an update owns, and its answers say what it did (issues 19.1, 19.9, 19.12, 19.13, 19.5).
 */
describe('containers loop on the rig: no spin, no contradiction', function () {
  this.timeout(120_000);
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;
  let events: AgentEvent[] = [];
  let dir: string;
  let mountPoint: string | undefined;

  const container = (): ContainerState | undefined =>
    subject?.agent.store.get().containers.find((c) => c.name === 'ros');
  const ask = (command: string, body: Record<string, unknown>, ms = 90_000) =>
    probe!.request(subject!.base, command, { id: `${command}-${Date.now()}-${Math.random()}`, ...body }, ms);
  const state = (name = 'ros') => docker('inspect', '-f', '{{.State.Status}}', name);

  type Section = Record<string, unknown>;
  async function agent(
    o: { containers?: Section; update?: Section; state?: Section; reconcile?: Section; wait?: boolean } = {},
  ): Promise<void> {
    const r = rig();
    subject = await startAgent({
      docker: { socketPath: r.docker.socketPath },
      registries: { 'docker.io': { mirror: r.registry.url } },
      devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
      reconcile: { retry: { initial: 0.5, max: 2 }, ...o.reconcile },
      update: { stableSeconds: 2, healthTimeout: 8, lockFile: join(dir, 'update.lock'), ...o.update },
      containers: o.containers ?? { ros: { image: r.fixtures.images.v339, stopTimeout: 1 } },
      ...(o.state ? { state: o.state } : {}),
    });
    subject.agent.bus.subscribe((e) => events.push(e));
    probe = await MqttProbe.connect(`mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`, { protocolVersion: 4 });
    await probe.subscribe(`${subject.base}/#`);
    if (o.wait === false) return;
    await waitUntil(() => container()?.state === 'running' && container()?.inSync, 30_000, 'ros running');
  }

  async function stopAgent(): Promise<void> {
    await probe?.close();
    await subject?.stop();
    probe = undefined;
    subject = undefined;
  }

  beforeEach(function () {
    needRig(this);
    events = [];
    cleanEngine();
    dir = tempDir('rfa-loop-');
    docker('pull', rig().fixtures.images.v339);
  });

  afterEach(async () => {
    await stopAgent();
    if (mountPoint) {
      execFileSync('umount', ['-l', mountPoint]);
      mountPoint = undefined;
    }
    if (rig()) cleanEngine();
  });

  it('a container taken out of the config is stopped once, without a spin, and left alone after (19.1)', async () => {
    await agent();
    await stopAgent();
    events = [];
    await agent({ containers: {}, wait: false });
    await waitUntil(() => state() === 'exited', 30_000, 'ros stopped');
    // A window in which a spinning loop would have retried hundreds of times.
    await sleep(2000);
    const failed = events.filter((e) => e.type === 'container.failed');
    assert.equal(failed.length, 0, JSON.stringify(failed));
    assert.equal(events.filter((e) => e.type === 'container.stopped' && e.reason === 'orphan').length, 1);
    assert.equal(subject!.logs.filter((l) => l.msg === 'container step failed; will retry').length, 0);
    // Started again by hand: the agent does not fight the operator, and never removes it.
    docker('start', 'ros');
    await sleep(2000);
    assert.equal(state(), 'running');
    assert.equal(events.filter((e) => e.type === 'container.stopped').length, 1);
  });

  it("a stop during an update's verification waits for the update, which completes; then ros is stopped (19.9)", async () => {
    const r = rig();
    docker('pull', r.fixtures.images.v340);
    await agent({ update: { stableSeconds: 6 } });
    const updating = ask('update', { container: 'ros', image: r.fixtures.images.v340 });
    await waitUntil(() => subject!.agent.store.get().update.status === 'verifying', 30_000, 'update verifying');
    const stopped = await ask('stop', { name: 'ros' });
    const update = await updating;
    assert.equal(update.ok, true, JSON.stringify(update));
    assert.equal((update.result as UpdateResult).status, 'done', 'the update was not blamed for the stop');
    assert.equal(stopped.ok, true, JSON.stringify(stopped));
    assert.equal((stopped.result as ContainerState).state, 'exited');
    assert.deepEqual(rosContainers(), [{ name: 'ros', state: 'exited', image: r.fixtures.images.v340 }]);
    assert.ok(!events.some((e) => e.type === 'update.rolledback'));
  });

  it("a restart during an update's verification waits for the update, then restarts the new container (19.9)", async () => {
    const r = rig();
    docker('pull', r.fixtures.images.v340);
    await agent({ update: { stableSeconds: 6 } });
    const updating = ask('update', { container: 'ros', image: r.fixtures.images.v340 });
    await waitUntil(() => subject!.agent.store.get().update.status === 'verifying', 30_000, 'update verifying');
    const restarted = await ask('restart', { name: 'ros' });
    assert.equal(((await updating).result as UpdateResult).status, 'done');
    assert.equal(restarted.ok, true, JSON.stringify(restarted));
    assert.equal((restarted.result as ContainerState).image, r.fixtures.images.v340);
    assert.deepEqual(rosContainers(), [{ name: 'ros', state: 'running', image: r.fixtures.images.v340 }]);
  });

  it('after an update that rolled back, stop then start leaves ros running, and start says so (19.13)', async () => {
    const r = rig();
    await agent({ update: { stableSeconds: 5, healthTimeout: 10 } });
    const update = await ask('update', { container: 'ros', image: r.fixtures.images.crash });
    assert.equal((update.result as UpdateResult).status, 'rolledback', JSON.stringify(update));
    const stopped = await ask('stop', { name: 'ros' });
    assert.equal((stopped.result as ContainerState).state, 'exited', JSON.stringify(stopped));
    const started = await ask('start', { name: 'ros' });
    assert.equal(started.ok, true, JSON.stringify(started));
    assert.equal((started.result as ContainerState).state, 'running', JSON.stringify(started));
    assert.equal(state(), 'running');
    assert.equal(rosVersion(), '3.3.9');
    await waitUntil(
      () => /rolled back .*running/.test(container()?.reason ?? ''),
      10_000,
      'state says it runs the old image',
    );
  });

  it('state.dir full: stop and start refuse with enospc and change nothing, now or at later reconciles (19.12)', async () => {
    mountPoint = tempDir('rfa-full-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint]);
    await agent({ state: { dir: mountPoint }, reconcile: { interval: 5 } });
    const fill = join(mountPoint, 'fill');
    const fillUp = () => {
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${fill}`, 'bs=4k'], { stdio: 'ignore' });
      } catch {
        // dd ends with ENOSPC: that is the point.
      }
    };
    fillUp();
    const refused = await ask('stop', { name: 'ros' });
    assert.equal((refused.error as { code: string } | undefined)?.code, 'enospc', JSON.stringify(refused));
    await sleep(6000); // past reconcile.interval: a hold kept in memory would act now
    assert.equal(state(), 'running', 'a refused stop stopped ros anyway');
    assert.ok(!existsSync(join(mountPoint, 'holds.json')));
    rmSync(fill);
    const stopped = await ask('stop', { name: 'ros' });
    assert.equal((stopped.result as ContainerState | undefined)?.state, 'exited', JSON.stringify(stopped));
    fillUp();
    const refusedStart = await ask('start', { name: 'ros' });
    assert.equal((refusedStart.error as { code: string } | undefined)?.code, 'enospc', JSON.stringify(refusedStart));
    await sleep(6000);
    assert.equal(state(), 'exited', 'a refused start started ros anyway');
    rmSync(fill);
    const started = await ask('start', { name: 'ros' });
    assert.equal((started.result as ContainerState | undefined)?.state, 'running', JSON.stringify(started));
  });

  it('recreate of an untouched container without mounts commits nothing (the engine answers null) (19.5)', async () => {
    const ros = (x: string) => ({ ros: { image: rig().fixtures.images.v339, stopTimeout: 1, env: { X: x } } });
    await agent({ containers: ros('1') });
    assert.equal(docker('diff', 'ros'), '', 'the fixture container changes nothing by itself');
    await stopAgent();
    await agent({ containers: ros('2'), wait: false });
    await waitUntil(() => events.find((e) => e.type === 'container.recreated'), 30_000, 'recreated');
    const committed = events.find((e) => e.type === 'container.committed');
    assert.ok(!committed, `an untouched container was committed: ${JSON.stringify(committed)}`);
    assert.equal(docker('image', 'ls', '-q', 'localhost/robot-snapshots/ros'), '');
  });

  it("recreate commits only a changed container, into snapshots.repository, never the vendor's (19.5)", async () => {
    const r = rig();
    const data = join(dir, 'data');
    mkdirSync(data);
    const ros = (x: string) => ({
      ros: { image: r.fixtures.images.v339, stopTimeout: 1, env: { X: x }, mounts: [`${data}:/data`] },
    });
    // The default snapshots.repository: a name no stranger can own on Docker Hub (12.9).
    const repository = 'localhost/robot-snapshots/ros';
    await agent({ containers: ros('1') });
    const diff = docker('diff', 'ros');
    await stopAgent();
    await agent({ containers: ros('2'), wait: false });
    await waitUntil(() => events.find((e) => e.type === 'container.recreated'), 30_000, 'recreated');
    const early = events.find((e) => e.type === 'container.committed');
    assert.ok(!early, `a container with only its mount point (${diff}) was committed: ${JSON.stringify(early)}`);
    assert.equal(docker('image', 'ls', '-q', repository), '');
    docker('exec', 'ros', 'sh', '-c', 'echo work > /root/work.txt');
    await stopAgent();
    events = [];
    await agent({ containers: ros('3'), wait: false });
    const recreated = await waitUntil(
      () => events.find((e) => e.type === 'container.recreated'),
      30_000,
      'recreated again',
    );
    const committed = events.find((e) => e.type === 'container.committed');
    assert.ok(committed, 'the changed container was committed');
    assert.match(String(committed.image), /^localhost\/robot-snapshots\/ros:ros-\d{8}T\d{9}Z$/);
    assert.equal(recreated.committed, committed.image);
    assert.equal(docker('exec', 'ros', 'cat', '/root/work.txt'), 'work');
    const vendor = r.fixtures.images.v339.split(':')[0]!;
    const vendorTags = docker('image', 'ls', '--format', '{{.Tag}}', vendor).split('\n');
    assert.deepEqual(
      vendorTags.filter((t) => t.startsWith('ros-')),
      [],
    );
    assert.deepEqual(
      rosContainers().map((c) => c.name),
      ['ros'],
    );
  });
});
