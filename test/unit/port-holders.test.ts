import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { portHolders } from '../../agent/devices/port-holders.js';
import { PortHolder } from '../helpers/port-holder.js';
import { tempDir } from '../helpers/temp.js';

/** A procfs look-alike: <root>/<pid>/fd/<n> links, plus entries procfs has that are not processes. */
function fakeProc(device: string, pids: Record<string, string[]>): string {
  const root = tempDir('rfa-proc-');
  for (const [pid, links] of Object.entries(pids)) {
    const fdDir = join(root, pid, 'fd');
    mkdirSync(fdDir, { recursive: true });
    links.forEach((to, fd) => {
      // 'file' stands for a descriptor readlink refuses (EINVAL): it must not end the process's walk.
      if (to === 'file') writeFileSync(join(fdDir, String(fd)), '');
      else symlinkSync(to === 'device' ? device : to, join(fdDir, String(fd)));
    });
  }
  return root;
}

describe('port holders (/proc walk)', () => {
  it('finds every other process holding the device, skips itself and non-process entries', async () => {
    const dir = tempDir();
    const device = join(dir, 'ttyUSB0');
    writeFileSync(device, '');
    const procRoot = fakeProc(device, {
      '1': ['/dev/null', 'file', 'device'],
      '42': ['device'],
      '77': ['/dev/null'],
      self: ['device'],
      '12ab': ['device'],
      '100': ['device'],
    });
    assert.deepEqual(await portHolders(device, { procRoot, selfPid: 100 }), [1, 42]);
  });

  it('a device that is not there has no holders, not a throw', async () => {
    assert.deepEqual(await portHolders('/nonexistent/ttyUSB9', { procRoot: tempDir() }), []);
  });

  it('sees a real process holding the port in the real /proc', async () => {
    const device = join(tempDir(), 'ttyUSB0');
    writeFileSync(device, '');
    const holder = await PortHolder.hold(device);
    try {
      assert.deepEqual(await portHolders(device), [holder.pid]);
    } finally {
      await holder.release();
    }
    assert.deepEqual(await portHolders(device), []);
  });
});
