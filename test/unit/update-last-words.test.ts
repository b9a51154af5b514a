import assert from 'node:assert/strict';
import { boundLines, LAST_WORDS } from '../../agent/update/updater.js';

describe('the last words of a failed container (update events and state)', () => {
  it('keeps the newest lines that fit in the byte bound, in order', () => {
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i} ${'x'.repeat(200)}`);
    const kept = boundLines(lines.slice(-LAST_WORDS.lines), LAST_WORDS.bytes);
    assert.ok(kept.length > 0 && kept.length <= LAST_WORDS.lines);
    assert.ok(Buffer.byteLength(kept.join('\n')) <= LAST_WORDS.bytes);
    assert.equal(kept.at(-1), lines.at(-1));
    assert.deepEqual(kept, lines.slice(-kept.length));
  });

  it('cuts a single line longer than the bound to its end, and keeps short output whole', () => {
    const [cut] = boundLines([`start${'y'.repeat(10_000)}end`], 4096);
    assert.ok(cut!.endsWith('end') && Buffer.byteLength(cut!) < 4096);
    assert.deepEqual(boundLines(['a', 'b'], 4096), ['a', 'b']);
    assert.deepEqual(boundLines([], 4096), []);
  });
});
