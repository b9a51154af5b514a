import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { packageRoot } from '../../agent/core/package-root.js';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { freePort } from '../rig/net.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * Issue 18.2: the console of an agent without Docker or its devices said nothing of it (only the
 * state did). Each is said once, at warn, however often the agent retries.
 */
describe('the console says what is missing (spawned)', function () {
  this.timeout(60_000);
  let agent: AgentProcess | undefined;
  let server: Server | undefined;

  after(async () => {
    if (agent && agent.child.exitCode === null && agent.child.signalCode === null) agent.kill('SIGKILL');
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  });

  it('Docker unreachable and absent devices: one warn each, not one per retry; "stopped" last', async () => {
    const dir = tempDir();
    // A "Docker socket" that hangs up on every connection: it counts the agent's attempts.
    const socketPath = join(dir, 'docker.sock');
    let attempts = 0;
    server = createServer((socket) => {
      attempts += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server!.listen(socketPath, resolve));
    const sysfs = join(dir, 'sys');
    mkdirSync(join(sysfs, 'bus/usb/devices'), { recursive: true });
    agent = spawnAgent(['run'], {
      ROBOT_AGENT_ROBOT_ID: `silence-${process.pid}`,
      ROBOT_AGENT_MQTT_EMBEDDED_PORT: String(await freePort()),
      ROBOT_AGENT_STATE_DIR: join(dir, 'state'),
      ROBOT_AGENT_DOCKER_SOCKET_PATH: socketPath,
      ROBOT_AGENT_DEVICES_SYSFS_ROOT: sysfs,
      ROBOT_AGENT_DEVICES_DEV_ROOT: join(dir, 'dev'),
    });
    const a = agent;
    // Backoff of 1 s, then 2 s: three attempts are two retries after the first warn.
    await waitUntil(() => attempts >= 3, 30_000, `three connection attempts to the Docker socket (${attempts})`);
    const warns = () => a.logs().filter((l) => l.level === 'warn');
    const docker = warns().filter((l) => /^docker engine not available at .*docker\.sock: /.test(String(l.msg)));
    assert.equal(docker.length, 1, JSON.stringify(warns()));
    const devices = warns().filter((l) => String(l.msg).startsWith('devices not found at start: lidar, camera, board'));
    assert.equal(devices.length, 1, JSON.stringify(warns()));

    a.kill('SIGTERM');
    assert.equal(await a.exited(), 0);
    const logs = a.logs();
    assert.equal(logs[logs.length - 1]?.msg, 'stopped');
  });

  it('scripts/start.sh (npm start) says what it starts before the agent speaks', () => {
    // run --help: start.sh's whole path without a running agent at the end.
    const r = spawnSync('bash', [join(packageRoot(), 'scripts/start.sh'), '--help'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^start\.sh: starting robot-agent run --help /m);
    assert.match(r.stdout, /^usage: robot-agent run /);
  });
});
