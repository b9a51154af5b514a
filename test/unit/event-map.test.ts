import assert from 'node:assert/strict';
import { EventBus, type BusEvent } from '../../agent/state/event-bus.js';
import { Contract } from '../helpers/contract.js';

/*
 * Compile-time checks: each `@ts-expect-error` must be an error, or the build fails ("unused
 * directive"). They prove emit takes only declared types with their declared fields.
 */
export function misuses(bus: EventBus): void {
  // @ts-expect-error no such event type
  bus.emit('docker.gone', { error: { code: 'x', message: 'y' } });
  // @ts-expect-error docker.lost needs its error
  bus.emit('docker.lost', {});
  // @ts-expect-error retryInMs is a number (docs/schemas/event.json, container.failed)
  bus.emit('container.failed', { name: 'ros', action: 'run', error: { code: 'x', message: 'y' }, retryInMs: '5' });
  bus.subscribe((e) => {
    // @ts-expect-error not narrowed: not every event has an error
    void e.error;
    if (e.type === 'update.rolledback') void [e.reason.code, e.exitCode, e.logs.length];
  });
}

describe('the typed event map (issue 13.3)', () => {
  it('a listener narrows by type and reads the fields without casts; the envelope has ts and the id', () => {
    const bus = new EventBus();
    const seen: string[] = [];
    const all: BusEvent[] = [];
    bus.subscribe((e) => {
      all.push(e);
      if (e.type === 'docker.lost') seen.push(`lost: ${e.error.code}`);
      if (e.type === 'desired.changed') seen.push(`named: ${e.containers.join(',')}`);
    });
    bus.emit('docker.lost', { error: { code: 'docker_unavailable', message: 'the engine went away' } });
    bus.emit('desired.changed', { containers: ['ros', 'lidar'] });
    bus.emit('pull.failed', { id: 'req-1', image: 'x:1', error: { code: 'stalled', message: 'no bytes for 60 s' } });
    assert.deepEqual(seen, ['lost: docker_unavailable', 'named: ros,lidar']);
    assert.equal(all[2]!.id, 'req-1');
    assert.ok(all.every((e) => !Number.isNaN(Date.parse(e.ts))));
  });

  it('what the typed emit builds for a documented event is what docs/schemas/event.json accepts', () => {
    const bus = new EventBus();
    const all: BusEvent[] = [];
    bus.subscribe((e) => all.push(e));
    bus.emit('agent.started', { version: '0.1.0', pid: 42, modules: ['devices', 'containers'] });
    bus.emit('module.failed', {
      module: 'containers',
      error: { code: 'docker_unavailable', message: 'no engine' },
      failures: 1,
      retryAt: new Date().toISOString(),
    });
    bus.emit('container.devices', { name: 'ros', policy: 'live', made: [], removed: [], missing: ['lidar'] });
    const contract = new Contract();
    for (const event of all) assert.deepEqual(contract.problems('event.json', event), [], event.type);
  });
});
