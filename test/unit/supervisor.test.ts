import assert from 'node:assert/strict';
import { absentDevices } from '../../agent/devices/device-resolver.js';
import { silentLogger } from '../../agent/core/logger.js';
import { Supervisor, type AgentModule } from '../../agent/supervisor.js';
import { EventBus, type AgentEvent } from '../../agent/state/event-bus.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { AgentState } from '../../agent/state/types.js';
import { waitUntil } from '../helpers/wait.js';
import '../helpers/test-events.js';

function emptyState(): AgentState {
  const now = new Date().toISOString();
  return {
    robot: 'r',
    ts: now,
    agent: {
      version: 't',
      startedAt: now,
      pid: 1,
      modules: {},
      mqtt: {
        connected: false,
        protocolVersion: 4,
        broker: 'embedded',
        eventsDropped: 0,
        eventsBuffered: 0,
        reconnects: 0,
      },
    },
    host: { hostname: 'h', platform: 'linux', arch: 'x64', cpus: 1, metrics: null },
    docker: { available: false, since: now, error: { code: 'x', message: 'x' } },
    devices: absentDevices(),
    images: [],
    containers: [],
    desired: { appliedAt: null },
    update: { status: 'idle' },
    snapshots: [],
  };
}

describe('supervisor', () => {
  it('starts in order, stops in reverse', async () => {
    const calls: string[] = [];
    const mod = (name: string): AgentModule => ({
      name,
      start: async () => void calls.push(`start ${name}`),
      stop: async () => void calls.push(`stop ${name}`),
    });
    const store = new StateStore(emptyState());
    const sup = new Supervisor({
      modules: [mod('a'), mod('b'), mod('c')],
      store,
      bus: new EventBus(),
      logger: silentLogger,
    });
    await sup.startAll();
    await sup.stopAll(1000);
    assert.deepEqual(calls, ['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
    assert.equal(store.get().agent.modules.b?.status, 'stopped');
  });

  it('reports a failing module in log, event and state, keeps the others running, and retries it', async () => {
    const store = new StateStore(emptyState());
    const bus = new EventBus();
    const events: AgentEvent[] = [];
    bus.subscribe((e) => events.push(e));
    let attempts = 0;
    const flaky: AgentModule = {
      name: 'flaky',
      start: async () => {
        attempts += 1;
        if (attempts < 3) throw Object.assign(new Error('port busy'), { code: 'EADDRINUSE' });
      },
      stop: async () => undefined,
    };
    const steady: AgentModule = { name: 'steady', start: async () => undefined, stop: async () => undefined };
    const sup = new Supervisor({
      modules: [flaky, steady],
      store,
      bus,
      logger: silentLogger,
      retry: { initialMs: 20, maxMs: 40 },
    });
    await sup.startAll();
    assert.equal(store.get().agent.modules.steady?.status, 'running');
    assert.equal(store.get().agent.modules.flaky?.status, 'failed');
    assert.deepEqual(store.get().agent.modules.flaky?.error, { code: 'eaddrinuse', message: 'port busy' });
    await waitUntil(() => store.get().agent.modules.flaky?.status === 'running', 2000, 'flaky to recover');
    assert.equal(attempts, 3);
    const failed = events.filter((e) => e.type === 'module.failed');
    assert.equal(failed.length, 2);
    assert.equal(failed[1]!.failures, 2);
    await sup.stopAll(1000);
  });

  it('stops within its budget even when a module hangs', async () => {
    const store = new StateStore(emptyState());
    const hang: AgentModule = { name: 'hang', start: async () => undefined, stop: () => new Promise(() => undefined) };
    const sup = new Supervisor({ modules: [hang], store, bus: new EventBus(), logger: silentLogger });
    await sup.startAll();
    const t0 = Date.now();
    await sup.stopAll(200);
    assert.ok(Date.now() - t0 < 1000);
  });

  it('no retry fires after stop', async () => {
    const store = new StateStore(emptyState());
    let attempts = 0;
    const broken: AgentModule = {
      name: 'broken',
      start: async () => {
        attempts += 1;
        throw new Error('no');
      },
      stop: async () => undefined,
    };
    const sup = new Supervisor({
      modules: [broken],
      store,
      bus: new EventBus(),
      logger: silentLogger,
      retry: { initialMs: 30, maxMs: 30 },
    });
    await sup.startAll();
    await sup.stopAll(100);
    const after = attempts;
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(attempts, after);
  });
});

describe('state store', () => {
  it('announces a change once, and nothing when a section is replaced by an equal one', () => {
    const store = new StateStore(emptyState());
    let changes = 0;
    store.onChange(() => (changes += 1));
    store.update('host', (h) => ({ ...h }));
    assert.equal(changes, 0);
    store.update('host', (h) => ({ ...h, cpus: 4 }));
    assert.equal(changes, 1);
    assert.equal(store.get().host.cpus, 4);
  });

  it('isolates a throwing event listener from the others', () => {
    const errors: unknown[] = [];
    const bus = new EventBus((err) => errors.push(err));
    const got: string[] = [];
    bus.subscribe(() => {
      throw new Error('listener bug');
    });
    bus.subscribe((e) => got.push(e.type));
    bus.emit('x.y', {});
    assert.deepEqual(got, ['x.y']);
    assert.equal(errors.length, 1);
  });
});
