import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { UpdateJournal } from '../../agent/update/update-journal.js';
import { UpdateWindow } from '../../agent/update/update-window.js';
import { tempDir } from '../helpers/temp.js';

describe('update window and journal', () => {
  it('is open for `minutes` after each cron time, and says when it opens next', () => {
    const window = new UpdateWindow({ cron: '0 2 * * *', minutes: 30 });
    try {
      const at = (h: number, m: number, day = 24) => new Date(2026, 10, day, h, m, 15);
      assert.equal(window.isOpen(at(2, 0)), true);
      assert.equal(window.isOpen(at(2, 29)), true);
      assert.equal(window.isOpen(at(2, 30)), false);
      assert.equal(window.isOpen(at(1, 59)), false);
      assert.deepEqual(window.nextOpening(at(3, 0)), new Date(2026, 10, 25, 2, 0, 0));
    } finally {
      window.destroy();
    }
    const always = new UpdateWindow(undefined);
    assert.equal(always.isOpen(), true);
    assert.equal(always.nextOpening(), null);
  });

  it('the next opening it keeps between searches is what a fresh search says, at times across two days', () => {
    const kept = new UpdateWindow({ cron: '15 2 * * 1,4', minutes: 30 });
    try {
      const start = new Date(2026, 10, 24, 0, 0, 20).getTime();
      for (let m = 0; m < 2 * 24 * 60; m += 41) {
        const now = new Date(start + m * 60_000);
        const fresh = new UpdateWindow({ cron: '15 2 * * 1,4', minutes: 30 });
        try {
          assert.deepEqual(kept.nextOpening(now), fresh.nextOpening(now), now.toISOString());
        } finally {
          fresh.destroy();
        }
      }
      // Asked about an earlier time than it searched from: searched again, not the kept answer.
      assert.deepEqual(kept.nextOpening(new Date(2026, 10, 20, 12, 0)), new Date(2026, 10, 23, 2, 15));
    } finally {
      kept.destroy();
    }
  });

  it('the journal is replaced whole and leaves no temp file; clear removes it', () => {
    const dir = tempDir('rfa-journal-');
    const journal = new UpdateJournal(dir);
    assert.equal(journal.read(), null);
    const entry = {
      container: 'ros',
      step: 'stopping' as const,
      from: { image: 'a', imageId: 'sha256:1', containerId: 'c1' },
      to: { image: 'b' },
      aside: 'ros-previous-1',
      startedAt: new Date().toISOString(),
    };
    journal.write(entry);
    journal.write({ ...entry, step: 'renaming' });
    assert.equal(journal.read()?.step, 'renaming');
    assert.deepEqual(readdirSync(dir), ['update-journal.json']);
    journal.clear();
    assert.equal(journal.read(), null);
  });
});
