import assert from 'node:assert/strict';
import { mock } from 'node:test';
import { silentLogger } from '../../agent/core/logger.js';
import { Supervisor, type AgentModule } from '../../agent/supervisor.js';
import { absentDevices } from '../../agent/devices/device-resolver.js';
import { EventBus, type AgentEvent } from '../../agent/state/event-bus.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { AgentState } from '../../agent/state/types.js';

function state(): AgentState {
  const now = new Date().toISOString();
  return {
    agent: { version: 't', startedAt: now, pid: 1, modules: {} },
    devices: absentDevices(),
  } as unknown as AgentState;
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i += 1) await new Promise((r) => setImmediate(r));
}

describe('retry: the supervisor backs a failing module off (mocked timers)', () => {
  afterEach(() => mock.timers.reset());

  it('retries a failing module no sooner than each step of the ladder, capped, and not once it started', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    let attempts = 0;
    let failing = true;
    const broken: AgentModule = {
      name: 'broken',
      start: async () => {
        attempts += 1;
        if (failing) throw Object.assign(new Error('port busy'), { code: 'EADDRINUSE' });
      },
      stop: async () => undefined,
    };
    const bus = new EventBus();
    const events: AgentEvent[] = [];
    bus.subscribe((e) => events.push(e));
    const store = new StateStore(state());
    const retry = { initialMs: 1000, maxMs: 4000 };
    const sup = new Supervisor({ modules: [broken], store, bus, logger: silentLogger, retry });
    await sup.startAll();
    assert.equal(attempts, 1);
    // Each delay lies in the upper half of its window: 500-1000, 1000-2000, then 2000-4000 (the cap).
    const windows: Array<[number, number]> = [
      [500, 1000],
      [1000, 2000],
      [2000, 4000],
      [2000, 4000],
      [2000, 4000],
    ];
    for (const [i, [low, high]] of windows.entries()) {
      mock.timers.tick(low - 1);
      await flush();
      assert.equal(attempts, i + 1, `attempt ${i + 2} came before ${low} ms`);
      mock.timers.tick(high - low + 1);
      await flush();
      assert.equal(attempts, i + 2, `attempt ${i + 2} did not come by ${high} ms`);
    }
    const failures = events.filter((e) => e.type === 'module.failed').map((e) => e.failures);
    assert.deepEqual(failures, [1, 2, 3, 4, 5, 6], 'one module.failed per attempt, counting');
    // It starts: no retry is left behind.
    failing = false;
    mock.timers.tick(4000);
    await flush();
    const started = attempts;
    mock.timers.tick(60_000);
    await flush();
    assert.equal(attempts, started);
    await sup.stopAll(100);
  });
});
