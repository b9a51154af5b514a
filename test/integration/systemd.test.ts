import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../agent/core/package-root.js';
import { spawnAgent } from '../helpers/agent-process.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';

/** Where systemd-notify is not installed (a bare container), these are skipped. */
function have(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('systemd: Type=notify with a watchdog, and the unit file', function () {
  this.timeout(30_000);

  it('sends READY=1 once started, WATCHDOG=1 at half of WatchdogSec, STOPPING=1 on SIGTERM', async function () {
    if (!have('systemd-notify') || !have('socat')) this.skip();
    const dir = tempDir('rfa-notify-');
    const socket = join(dir, 'notify.sock');
    // A datagram socket standing in for systemd's (Node has none): socat prints what arrives.
    const received: string[] = [];
    const manager = spawn('socat', ['-u', `UNIX-RECV:${socket},unlink-early`, 'STDOUT'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    manager.stdout.on('data', (chunk: Buffer) => received.push(chunk.toString()));
    try {
      await waitUntil(() => readable(socket), 3000, 'the notify socket');
      const config = writeYaml(dir, 'config.yaml', {
        mqtt: { embedded: { port: 0 } },
        state: { dir: join(dir, 'state') },
        docker: { socketPath: join(dir, 'none.sock') },
      });
      const agent = spawnAgent(['run', '--config', config], { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '600000' });
      await waitUntil(() => received.join('').includes('READY=1'), 10_000, 'READY=1');
      const since = received.join('').split('WATCHDOG=1').length;
      await waitUntil(
        () => received.join('').split('WATCHDOG=1').length >= since + 2,
        3000,
        'two watchdog pings 300 ms apart',
      );
      assert.match(received.join(''), /STATUS=running as robot /);
      agent.kill('SIGTERM');
      assert.equal(await agent.exited(6000), 0);
      await waitUntil(() => received.join('').includes('STOPPING=1'), 3000, 'STOPPING=1');
    } finally {
      manager.kill();
    }
  });

  it('the unit passes systemd-analyze verify, as Type=notify with the watchdog and hardening', function () {
    if (!have('systemd-analyze')) this.skip();
    const unit = readFileSync(join(packageRoot(), 'systemd', 'robot-agent.service'), 'utf8');
    const expected = [
      'Type=notify',
      'WatchdogSec=30',
      'Restart=always',
      'NoNewPrivileges=yes',
      'ProtectSystem=full',
      'After=docker.service network-online.target',
    ];
    // Issue 14.6: two malloc arenas, a few MiB less RSS at idle (docs/operations.md#footprint).
    for (const line of [...expected, 'Environment=MALLOC_ARENA_MAX=2']) {
      assert.ok(unit.includes(line), `the unit lacks ${line}`);
    }
    // Verified as installed, with this machine's node and this checkout standing in for /opt.
    const dir = tempDir('rfa-unit-');
    const file = join(dir, 'robot-agent.service');
    writeFileSync(file, unit.replace('/usr/bin/node', process.execPath).replaceAll('/opt/robot-agent', packageRoot()));
    const verify = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
    assert.equal(verify.status, 0, verify.stderr);
    assert.equal(`${verify.stdout}${verify.stderr}`.trim(), '', 'no warnings');
  });
});

function readable(path: string): boolean {
  try {
    execFileSync('test', ['-S', path]);
    return true;
  } catch {
    return false;
  }
}
