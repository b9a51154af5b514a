import assert from 'node:assert/strict';
import { linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile, writeJsonFile } from '../../agent/state/json-file.js';
import { tempDir } from '../helpers/temp.js';

/**
 * The agent's own files in state.dir (journal, holds, desired, history, snapshot records): nothing
 * planted there, at the temp name or the final name, is ever written or read through.
 */
const badPath = (err: { code?: string }) => err.code === 'bad_path';

describe('security: paths in state.dir (json-file)', () => {
  let state: string;
  let outside: string;
  beforeEach(() => {
    state = tempDir('rfa-state-');
    outside = join(tempDir('rfa-outside-'), 'shadow');
    writeFileSync(outside, 'root:secret\n');
  });

  it('does not write through a symlink planted at the old temp name (<file>.tmp)', () => {
    symlinkSync(outside, join(state, 'holds.json.tmp'));
    writeJsonFile(join(state, 'holds.json'), { held: ['ros'] });
    assert.equal(readFileSync(outside, 'utf8'), 'root:secret\n');
    assert.ok(lstatSync(join(state, 'holds.json')).isFile());
    assert.deepEqual(readJsonFile(join(state, 'holds.json')), { held: ['ros'] });
  });

  it('does not write through a hard link planted at the old temp name', () => {
    linkSync(outside, join(state, 'update-journal.json.tmp'));
    writeJsonFile(join(state, 'update-journal.json'), { step: 'created' });
    assert.equal(readFileSync(outside, 'utf8'), 'root:secret\n');
  });

  it('replaces a final name hard-linked to an outside file with a new inode, never writing through it', () => {
    linkSync(outside, join(state, 'desired.json'));
    writeJsonFile(join(state, 'desired.json'), { pins: {} });
    assert.equal(readFileSync(outside, 'utf8'), 'root:secret\n');
    assert.deepEqual(readJsonFile(join(state, 'desired.json')), { pins: {} });
  });

  it('refuses to replace a final name that is a symlink, leaving its target alone', () => {
    symlinkSync(outside, join(state, 'update-history.json'));
    assert.throws(() => writeJsonFile(join(state, 'update-history.json'), { entries: [] }), badPath);
    assert.equal(readFileSync(outside, 'utf8'), 'root:secret\n');
    assert.ok(lstatSync(join(state, 'update-history.json')).isSymbolicLink());
    // No temp file left behind.
    assert.deepEqual(
      readdirSync(state).filter((f) => f.endsWith('.partial')),
      [],
    );
  });

  it('does not read a state file through a symlink (an outside JSON file is not taken for state)', () => {
    const fake = join(tempDir('rfa-outside-'), 'journal.json');
    writeFileSync(fake, JSON.stringify({ step: 'swap', container: 'ros' }));
    symlinkSync(fake, join(state, 'update-journal.json'));
    assert.equal(readJsonFile(join(state, 'update-journal.json')), undefined);
  });

  it('does not read a state file larger than its limit, nor a directory', () => {
    writeFileSync(join(state, 'big.json'), Buffer.alloc(16 * 1024 * 1024 + 1, 0x20));
    assert.equal(readJsonFile(join(state, 'big.json')), undefined);
    mkdirSync(join(state, 'dir.json'));
    assert.equal(readJsonFile(join(state, 'dir.json')), undefined);
    assert.throws(() => writeJsonFile(join(state, 'dir.json'), {}), badPath);
  });
});
