import assert from 'node:assert/strict';
import { SerialQueue } from '../../agent/core/serial-queue.js';

describe('the serial queue (core): one change at a time', () => {
  it('runs each function once the one before has settled (failed too); each caller gets its own outcome', async () => {
    const errors: unknown[] = [];
    const queue = new SerialQueue((err) => errors.push(err));
    const order: string[] = [];
    let release: () => void = () => undefined;
    const first = queue.run(async () => {
      order.push('first begins');
      await new Promise<void>((r) => (release = r));
      order.push('first ends');
      throw new Error('first failed');
    });
    const second = queue.run(async () => {
      order.push('second');
      return 2;
    });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, ['first begins'], 'the second waits for the first');
    release();
    await assert.rejects(first, /first failed/);
    assert.equal(await second, 2);
    assert.deepEqual(order, ['first begins', 'first ends', 'second']);
    await queue.idle();
    assert.equal(errors.length, 1, 'a failure nobody else may hear of is reported once');
  });

  it('idle() resolves once everything queued so far has settled, and never rejects', async () => {
    const queue = new SerialQueue();
    let done = false;
    void queue
      .run(async () => {
        await new Promise((r) => setTimeout(r, 20));
        done = true;
        throw new Error('no one listens');
      })
      .catch(() => undefined);
    await queue.idle();
    assert.equal(done, true);
  });
});
