import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { packageRoot } from '../../agent/core/package-root.js';
import type { AgentState } from '../../agent/state/types.js';
import { docker } from '../helpers/engine-cli.js';
import { MqttProbe, type Received } from '../helpers/mqtt-probe.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { freePort } from '../rig/net.js';
import { needRig, rig } from '../setup.js';

const IMAGE = 'robot-agent:jetson-test';

/**
 * Splits a systemd command line (ExecStart=, with its continuation lines joined) into arguments:
 * whitespace separates, single or double quotes group, as systemd.service(5) describes.
 */
function splitCommand(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

function unitCommand(unit: string, key: 'ExecStart' | 'ExecStartPre' | 'ExecStop'): string[] {
  const joined = unit.replace(/\\\n/g, ' ');
  const line = joined.split('\n').find((l) => l.startsWith(`${key}=`));
  assert.ok(line, `${key} in the unit`);
  return splitCommand(line.slice(key.length + 1).replace(/^-/, ''));
}

/**
 * The Jetson Nano path end to end, as close as this machine gets (scripts/jetson-root.sh says why
 * Debian and not Ubuntu 18.04): an arm64 root with Docker 20.10's CLI, glibc reported as 2.27, where
 * deploy/install.sh runs under qemu-user against the rig's engine (its socket where a robot has it);
 * then the unit it installed starts the arm64 agent image, which reports over MQTT.
 */
describe('the Jetson Nano path: install.sh --container in an arm64 root with Docker 20.10', function () {
  this.timeout(900_000);
  let root: string;
  let socket: string;

  /** A command inside the arm64 root, as root on the robot would run it, the engine's socket at /run/docker.sock. */
  const inRootArgs = (args: string[]) => {
    const script =
      'mount --bind "$1" "$2/run/docker.sock" && root="$2" && shift 2 && exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"';
    return ['-m', '--', 'sh', '-c', script, 'sh', socket, root, ...args];
  };
  const run = (args: string[]) => spawnSync('unshare', inRootArgs(args), { encoding: 'utf8' });
  const start = (args: string[]) => spawn('unshare', inRootArgs(args), { stdio: ['ignore', 'pipe', 'pipe'] });

  before(function () {
    if (!rig()) return;
    const built = spawnSync(
      'bash',
      [join(packageRoot(), 'deploy/build-image.sh'), '--platform', 'linux/arm64', IMAGE],
      {
        encoding: 'utf8',
        env: { ...process.env, DOCKER_HOST: `unix://${rig().docker.socketPath}` },
      },
    );
    assert.equal(built.status, 0, built.stderr);
    const tarball = execFileSync('bash', [join(packageRoot(), 'scripts/jetson-root.sh')], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .at(-1)!;
    root = tempDir('rfa-jetson-');
    execFileSync('tar', ['-C', root, '-xf', tarball]);
    // The checkout, as an operator copies it onto the robot (install.sh --container needs no build).
    for (const d of ['deploy', 'config']) cpSync(join(packageRoot(), d), join(root, 'opt/src', d), { recursive: true });
    // Ubuntu 18.04's C library, as getconf reports it (the one thing faked: the root is Debian's).
    mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
    writeFileSync(join(root, 'usr/local/bin/getconf'), '#!/bin/sh\n[ "$1" = GNU_LIBC_VERSION ] && echo glibc 2.27\n');
    chmodSync(join(root, 'usr/local/bin/getconf'), 0o755);
    writeFileSync(join(root, 'run/docker.sock'), '');
    socket = rig().docker.socketPath;
  });

  afterEach(() => {
    if (!rig()) return;
    spawnSync('docker', [...rig().docker.cliArgs, 'rm', '-f', 'robot-agent'], { stdio: 'ignore' });
  });

  it('its Docker CLI is arm64 code and reaches the engine: Docker 20.10', function () {
    needRig(this);
    const v = run(['docker', 'version', '--format', '{{.Client.Arch}} {{.Server.Version}}']);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.trim(), 'arm64 20.10.24+dfsg1');
  });

  it('install.sh without --container refuses glibc 2.27 clearly and writes nothing', function () {
    needRig(this);
    const r = run(['bash', '/opt/src/deploy/install.sh']);
    assert.equal(r.status, 3, r.stderr + r.stdout);
    assert.match(r.stderr, /glibc_too_old: .*glibc 2\.27.*--container IMAGE/);
    for (const path of [
      'etc/robot-agent',
      'etc/systemd/system/robot-agent.service',
      'etc/udev/rules.d/99-robot-agent.rules',
      'opt/robot-agent',
    ]) {
      assert.ok(!existsSync(join(root, path)), `${path} not written`);
    }
  });

  it('install.sh --container installs the unit, udev rules, config and state; the unit runs the arm64 agent, which reports', async function () {
    needRig(this);
    const r = run(['bash', '/opt/src/deploy/install.sh', '--container', IMAGE]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Docker 20\.10\.24\+dfsg1: installing the agent image robot-agent:jetson-test into \//);
    assert.equal(
      readFileSync(join(root, 'etc/udev/rules.d/99-robot-agent.rules'), 'utf8'),
      readFileSync(join(packageRoot(), 'deploy/udev/99-robot-agent.rules'), 'utf8'),
    );
    assert.ok(
      existsSync(join(root, 'var/lib/robot-agent')) && !existsSync(join(root, 'opt/robot-agent')),
      'state dir, and no Node package',
    );
    const unit = readFileSync(join(root, 'etc/systemd/system/robot-agent.service'), 'utf8');
    const execStart = unitCommand(unit, 'ExecStart');
    assert.equal(execStart.at(-1), IMAGE);

    // The operator's step: a robot id and the embedded broker's port (a free one on the rig's host).
    const port = await freePort();
    const robot = `jetson-${process.pid}`;
    const config = join(root, 'etc/robot-agent/config.yaml');
    const settings = (parse(readFileSync(config, 'utf8')) ?? {}) as Record<string, unknown>;
    writeFileSync(config, stringify({ ...settings, robot: { id: robot }, mqtt: { embedded: { port } } }));

    // systemd would run these; the engine is on the host, so the unit's host paths are the root's
    // (the rig has no robot /dev, /sys or udev to lend: empty ones stand in).
    for (const d of ['dev', 'sys', 'run/udev']) mkdirSync(join(root, d), { recursive: true });
    const onHost = (arg: string) =>
      arg
        .replace(/^\/var\/run\/docker\.sock:/, `${socket}:`)
        .replace(/^\/(etc\/robot-agent|var\/lib\/robot-agent|dev|sys|run\/udev):/, `${root}/$1:`);
    const pre = run(unitCommand(unit, 'ExecStartPre'));
    assert.ok(pre.status === 0 || /No such container/.test(pre.stderr), pre.stderr);
    const agent = start(execStart.map(onHost));
    const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
    try {
      const login = () => ({
        username: 'robot-agent',
        password: readFileSync(join(root, 'var/lib/robot-agent/embedded-broker.password'), 'utf8').trim(),
      });
      const probe = await waitUntil(
        () => MqttProbe.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, ...login() }),
        180_000,
        'the arm64 agent listening',
      );
      try {
        await probe.subscribe(`fleet/${robot}/#`);
        const host = await probe.waitForTopic(`fleet/${robot}/state/host`, 60_000);
        assert.equal((JSON.parse(host.text) as { arch: string }).arch, 'arm64');
        const dockerUp = (m: Received) =>
          m.topic === `fleet/${robot}/state/docker` && (JSON.parse(m.text) as AgentState['docker']).available;
        const state = await probe.waitFor(dockerUp, 90_000, 'state/docker with the engine available');
        assert.equal((JSON.parse(state.text) as AgentState['docker']).version, '20.10.24+dfsg1');
        assert.equal((await probe.request(`fleet/${robot}`, 'ping', { id: 'on-the-jetson' }, 30_000)).ok, true);
      } finally {
        await probe.close();
      }
      // ExecStop: the agent stops cleanly, and `docker run --rm` (the unit's main process) ends with 0.
      const stop = run(unitCommand(unit, 'ExecStop'));
      assert.equal(stop.status, 0, stop.stderr);
      assert.equal(await exited, 0);
      assert.doesNotMatch(docker('ps', '-a', '--format', '{{.Names}}'), /^robot-agent$/m, '--rm removed it');
    } finally {
      agent.kill('SIGKILL');
    }
  });
});
