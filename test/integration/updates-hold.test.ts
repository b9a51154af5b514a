import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { AgentEvent } from '../../agent/state/event-bus.js';
import type { ContainerState, UpdateResult } from '../../agent/state/types.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { cleanEngine, docker } from '../helpers/engine-cli.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { rosContainers } from '../helpers/ros-containers.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig, rig } from '../setup.js';

/**
 * Issue 13, "Done when": the containers loop owns every change of a container, so a stop or a
 * restart by command that comes while an update verifies its new container is held until the
 * update ends (it runs in the loop's turn), then done on the container that stands; the update
 * is not blamed for a stop it did not cause.
 */
describe('a stop or restart by command during an update is held until the update ends', function () {
  this.timeout(90_000);
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;
  /** Events and command answers, in the order they happened. */
  const log: string[] = [];
  const events: AgentEvent[] = [];

  const container = (): ContainerState | undefined =>
    subject?.agent.store.get().containers.find((c) => c.name === 'ros');
  const ask = (command: string, body: Record<string, unknown>, ms = 60_000) =>
    probe!.request(subject!.base, command, { id: `${command}-${Date.now()}-${Math.random()}`, ...body }, ms);

  beforeEach(function () {
    needRig(this);
    log.length = 0;
    events.length = 0;
    cleanEngine();
    docker('pull', rig().fixtures.images.v340);
  });

  afterEach(async () => {
    await probe?.close();
    await subject?.stop();
    probe = undefined;
    subject = undefined;
    if (rig()) cleanEngine();
  });

  it('stop then restart sent while the new container verifies: both wait, then act on the new container', async () => {
    const r = rig();
    const dir = tempDir('rfa-upd-hold-');
    subject = await startAgent({
      docker: { socketPath: r.docker.socketPath },
      registries: { 'docker.io': { mirror: r.registry.url } },
      devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
      reconcile: { retry: { initial: 0.5, max: 2 } },
      // Long enough to send both commands while it verifies.
      update: { stableSeconds: 8, healthTimeout: 30, lockFile: join(dir, 'update.lock') },
      containers: { ros: { image: r.fixtures.images.v339, stopTimeout: 1 } },
    });
    subject.agent.bus.subscribe((e) => {
      events.push(e);
      if (e.type.startsWith('update.') && e.type !== 'update.progress') log.push(e.type);
    });
    probe = await MqttProbe.connect(`mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`, { protocolVersion: 4 });
    await probe.subscribe(`${subject.base}/#`);
    await waitUntil(() => container()?.state === 'running' && container()?.inSync, 30_000, 'ros running');
    const oldId = docker('inspect', '-f', '{{.Id}}', 'ros');

    const update = ask('update', { container: 'ros', image: r.fixtures.images.v340 }).then((a) => {
      log.push('update answered');
      return a;
    });
    await waitUntil(() => subject!.agent.store.get().update.status === 'verifying', 30_000, 'the update verifying');
    const newId = docker('inspect', '-f', '{{.Id}}', 'ros');
    assert.notEqual(newId, oldId);
    const stop = ask('stop', { name: 'ros' }).then((a) => {
      log.push('stop answered');
      return a;
    });
    const restart = ask('restart', { name: 'ros' }).then((a) => {
      log.push('restart answered');
      return a;
    });

    const updated = await update;
    assert.equal((updated.result as UpdateResult | undefined)?.status, 'done', JSON.stringify(updated));
    const [stopped, restarted] = await Promise.all([stop, restart]);
    assert.equal(stopped.ok, true, JSON.stringify(stopped));
    assert.equal(restarted.ok, true, JSON.stringify(restarted));

    // Neither touched the container before the update ended, and the update was not blamed.
    const done = log.indexOf('update.done');
    assert.ok(done >= 0, log.join(', '));
    assert.ok(log.indexOf('stop answered') > done, log.join(', '));
    assert.ok(log.indexOf('restart answered') > done, log.join(', '));
    assert.equal(log.includes('update.rolledback'), false, log.join(', '));
    assert.equal(log.includes('update.failed'), false, log.join(', '));
    assert.equal(events.find((e) => e.type === 'update.verified')?.by, 'stable');

    // Both acted on the new container, in the order the loop took them: the last word stands.
    assert.equal(docker('inspect', '-f', '{{.Id}}', 'ros'), newId);
    const last = log.indexOf('stop answered') > log.indexOf('restart answered') ? 'exited' : 'running';
    assert.deepEqual(rosContainers(), [{ name: 'ros', state: last, image: r.fixtures.images.v340 }]);
  });
});
