import assert from 'node:assert/strict';
import { Backoff } from '../../agent/core/backoff.js';
import { BoundedQueue } from '../../agent/core/bounded-queue.js';
import { AgentError, toErrorInfo } from '../../agent/core/errors.js';
import { createLogger } from '../../agent/core/logger.js';

describe('backoff', () => {
  it('doubles from 1 s to a 60 s ceiling, each delay in the upper half of its window', () => {
    const low = new Backoff({ initialMs: 1000, maxMs: 60_000, random: () => 0 });
    const high = new Backoff({ initialMs: 1000, maxMs: 60_000, random: () => 0.999999 });
    const lows = Array.from({ length: 9 }, () => low.next());
    const highs = Array.from({ length: 9 }, () => high.next());
    assert.deepEqual(lows, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.deepEqual(highs, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  });

  it('spreads a fleet: robots that lost the broker together do not come back together', () => {
    const delays = Array.from({ length: 200 }, () => {
      const b = new Backoff({ initialMs: 1000, maxMs: 60_000 });
      for (let i = 0; i < 5; i += 1) b.next();
      return b.next();
    });
    const distinct = new Set(delays.map((d) => Math.round(d / 100))).size;
    assert.ok(distinct > 50, `only ${distinct} distinct 100 ms slots among 200 robots`);
    assert.ok(Math.min(...delays) >= 16_000 && Math.max(...delays) <= 32_000);
  });

  it('starts over after reset', () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 60_000, random: () => 1 });
    b.next();
    b.next();
    b.reset();
    assert.equal(b.next(), 1000);
  });
});

describe('bounded queue', () => {
  it('drops the oldest beyond its capacity and counts what it dropped', () => {
    const q = new BoundedQueue<number>(3);
    for (let i = 1; i <= 5; i += 1) q.push(i);
    assert.equal(q.dropped, 2);
    assert.deepEqual(q.drain(), [3, 4, 5]);
    assert.equal(q.length, 0);
  });

  it('keeps the cap when items are put back at the front', () => {
    const q = new BoundedQueue<number>(3);
    q.push(4);
    q.push(5);
    q.unshift([1, 2, 3]);
    assert.deepEqual(q.drain(), [3, 4, 5]);
    assert.equal(q.dropped, 2);
  });

  it('refuses a nonsensical capacity', () => {
    assert.throws(() => new BoundedQueue(0), RangeError);
  });
});

describe('errors and logs', () => {
  it('turns any thrown value into {code, message}', () => {
    assert.deepEqual(toErrorInfo(new AgentError('busy', 'later')), { code: 'busy', message: 'later' });
    assert.deepEqual(toErrorInfo(Object.assign(new Error('gone'), { code: 'ECONNREFUSED' })), {
      code: 'econnrefused',
      message: 'gone',
    });
    assert.deepEqual(toErrorInfo('weird'), { code: 'internal', message: 'weird' });
  });

  it('never writes a registered secret, wherever it appears', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', secrets: ['hunter2'], write: (l) => lines.push(l) });
    log.info('connecting with hunter2', { url: 'mqtt://u:hunter2@b', error: new Error('auth hunter2 refused') });
    assert.equal(lines.length, 1);
    assert.ok(!lines[0]!.includes('hunter2'), lines[0]);
    assert.equal((JSON.parse(lines[0]!) as { msg: string }).msg, 'connecting with ***');
  });

  it('filters below its level', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', write: (l) => lines.push(l) });
    log.info('quiet');
    log.warn('loud');
    assert.equal(lines.length, 1);
  });
});

describe('log lines', () => {
  it('start with ts, level, module, msg; a field with one of those names cannot overwrite them', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', write: (l) => lines.push(l) }, 'supervisor');
    log.error('failed', { module: 'devices', code: 'x' });
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.deepEqual(Object.keys(entry).slice(0, 4), ['ts', 'level', 'module', 'msg']);
    assert.equal(entry.module, 'supervisor');
    assert.equal(entry.field_module, 'devices');
    assert.equal(entry.code, 'x');
  });
});
