import assert from 'node:assert/strict';
import { DockerEngineLink, type EngineEvent } from '../../agent/docker/engine-link.js';
import { silentLogger } from '../../agent/core/logger.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { Contract } from '../helpers/contract.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig } from '../setup.js';
import { EventBus, type AgentEvent } from '../../agent/state/event-bus.js';

describe('Docker engine link', function () {
  this.timeout(60_000);
  const contract = new Contract();
  let subject: AgentUnderTest | undefined;

  afterEach(async () => {
    await subject?.stop();
    subject = undefined;
  });

  it('reports the engine version, API version and data root in state', async function () {
    const rig = needRig(this);
    subject = await startAgent({ docker: { socketPath: rig.docker.socketPath } });
    const docker = await waitUntil(
      () => (subject!.agent.store.get().docker.available ? subject!.agent.store.get().docker : undefined),
      5000,
      'docker available',
    );
    assert.match(docker.version!, /^20\.10\./);
    assert.equal(docker.apiVersion, '1.41');
    assert.equal(docker.rootDir, rig.docker.dataRoot);
    assert.equal(docker.error, undefined);
    contract.assert('state.json', { ...subject.agent.store.get(), ts: new Date().toISOString() });
  });

  it('follows the engine event stream', async function () {
    const rig = needRig(this);
    const { StateStore } = await import('../../agent/state/state-store.js');
    const subjectState = (await startAgent()).agent;
    const store = new StateStore(subjectState.store.get() as never);
    await subjectState.stop(1000);
    const link = new DockerEngineLink({
      socketPath: rig.docker.socketPath,
      store,
      bus: new EventBus(),
      logger: silentLogger,
    });
    const seen: EngineEvent[] = [];
    link.onEngineEvent((e) => seen.push(e));
    await link.start();
    try {
      await waitUntil(() => link.available, 5000, 'link connected');
      const name = `rfa-evt-${Date.now()}`;
      await link.docker.createVolume({ Name: name });
      await link.docker.getVolume(name).remove();
      await waitUntil(
        () => seen.some((e) => e.Type === 'volume' && e.Action === 'destroy' && e.Actor?.ID === name),
        5000,
        'volume destroy event',
      );
      assert.ok(seen.some((e) => e.Type === 'volume' && e.Action === 'create' && e.Actor?.ID === name));
    } finally {
      await link.stop();
    }
  });

  it('detects an engine that dies and recovers when it is back, without restarting the agent', async function () {
    const rig = needRig(this);
    subject = await startAgent({ docker: { socketPath: rig.docker.socketPath } });
    const events: AgentEvent[] = [];
    subject.agent.bus.subscribe((e) => events.push(e));
    await waitUntil(() => subject!.agent.store.get().docker.available, 5000, 'docker available');
    const restarted = rig.docker.restart({ kill: true, downMs: 1500 });
    await waitUntil(() => !subject!.agent.store.get().docker.available, 5000, 'docker seen as lost');
    const lost = subject.agent.store.get().docker;
    assert.ok(lost.error, 'state says why');
    assert.ok(events.some((e) => e.type === 'docker.lost'));
    await restarted;
    await waitUntil(() => subject!.agent.store.get().docker.available, 20_000, 'docker recovered');
    assert.ok(events.some((e) => e.type === 'docker.connected'));
    const pid = subject.agent.store.get().agent.pid;
    assert.equal(pid, process.pid);
  });
});

describe('host metrics', function () {
  let subject: AgentUnderTest | undefined;
  afterEach(async () => {
    await subject?.stop();
    subject = undefined;
  });

  it('samples load, memory, the state dir and Docker data root disks, temperature or null, uptime', async function () {
    const rig = needRig(this);
    subject = await startAgent({ docker: { socketPath: rig.docker.socketPath }, metrics: { interval: 5 } });
    await waitUntil(() => subject!.agent.store.get().docker.available, 5000, 'docker available');
    const metrics = await waitUntil(
      () => {
        const m = subject!.agent.store.get().host.metrics;
        return m && m.disks.some((d) => d.role === 'docker') ? m : undefined;
      },
      8000,
      'a sample with the docker disk',
    );
    assert.ok(
      metrics.memory.total > 0 && metrics.memory.available > 0 && metrics.memory.available <= metrics.memory.total,
    );
    const stateDisk = metrics.disks.find((d) => d.role === 'state')!;
    assert.equal(stateDisk.path, subject.loaded.config.state.dir);
    assert.ok(stateDisk.total > 0 && stateDisk.available <= stateDisk.total);
    assert.equal(metrics.disks.find((d) => d.role === 'docker')!.path, rig.docker.dataRoot);
    assert.ok(metrics.cpuTemperature === null || typeof metrics.cpuTemperature === 'number');
    assert.ok(metrics.uptime > 0);
    assert.equal(metrics.loadAverage.length, 3);
    new Contract().assert('state.json', { ...subject.agent.store.get(), ts: new Date().toISOString() });
  });
});
