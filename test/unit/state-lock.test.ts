import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../../agent/core/errors.js';
import { lockStateDir, STATE_LOCK_FILE } from '../../agent/state/state-lock.js';
import { tempDir } from '../helpers/temp.js';

function refusal(fn: () => unknown): AgentError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AgentError, String(err));
    return err;
  }
  assert.fail('expected a refusal');
}

/** The state.dir lock in process (the two-agent case is test/integration/state-lock.test.ts). */
describe('state.dir lock', () => {
  it("is exclusive: a second lock on the same dir is refused with the holder's PID until released", () => {
    const dir = join(tempDir(), 'state');
    const first = lockStateDir(dir, { pid: 4242, version: '9.9.9' });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, STATE_LOCK_FILE), 'utf8')).pid, 4242);
    assert.equal(statSync(join(dir, STATE_LOCK_FILE)).mode & 0o777, 0o640);
    const err = refusal(() => lockStateDir(dir));
    assert.equal(err.code, 'state_dir_locked');
    assert.match(
      err.message,
      /^another robot agent \(PID 4242, started .*\) is already running on the state directory /,
    );
    assert.match(err.message, /systemctl stop robot-agent, or kill 4242/);
    first.release();
    lockStateDir(dir).release();
  });

  it('never opens the lock file through a planted symbolic link', () => {
    const root = tempDir();
    const dir = join(root, 'state');
    mkdirSync(dir);
    const target = join(root, 'elsewhere');
    symlinkSync(target, join(dir, STATE_LOCK_FILE));
    const err = refusal(() => lockStateDir(dir));
    assert.equal(err.code, 'state_lock');
    assert.match(err.message, /ELOOP/);
    assert.equal(existsSync(target), false);
    assert.ok(lstatSync(join(dir, STATE_LOCK_FILE)).isSymbolicLink());
  });

  it('without flock(1) it says what to install, rather than run unprotected', () => {
    const err = refusal(() => lockStateDir(join(tempDir(), 'state'), { flockPath: '/nonexistent/flock' }));
    assert.equal(err.code, 'state_lock');
    assert.match(err.message, /flock\(1\) \(ENOENT\); install util-linux/);
  });
});
