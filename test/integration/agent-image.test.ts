import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { packageRoot } from '../../agent/core/package-root.js';
import type { StateSummary } from '../../agent/mqtt/summary.js';
import type { AgentState } from '../../agent/state/types.js';
import { docker } from '../helpers/engine-cli.js';
import { MqttProbe, type Received } from '../helpers/mqtt-probe.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { freePort } from '../rig/net.js';
import { needRig, rig } from '../setup.js';

/**
 * No image can be pulled here, so `node:20-bookworm-slim` is stood in for by this machine's own
 * node binary (and flock) and the libraries they link (as the rig's busybox images stand in for
 * ROS), and deploy/Dockerfile is built on it unchanged.
 */
function importNodeBase(dir: string): void {
  const rootfs = join(dir, 'rootfs');
  const put = (from: string, to: string) => {
    mkdirSync(join(rootfs, dirname(to)), { recursive: true });
    copyFileSync(from, join(rootfs, to));
  };
  put(process.execPath, '/usr/local/bin/node');
  // flock(1) too, which the agent locks its state dir with: util-linux is essential in Debian, so
  // the real base image has it.
  put('/usr/bin/flock', '/usr/bin/flock');
  for (const binary of [process.execPath, '/usr/bin/flock']) {
    const libs =
      execFileSync('ldd', [binary])
        .toString()
        .match(/\/[^\s]+\.so[^\s]*/g) ?? [];
    for (const lib of libs) put(execFileSync('readlink', ['-f', lib]).toString().trim(), lib);
  }
  for (const d of ['tmp', 'etc', 'root']) mkdirSync(join(rootfs, d), { recursive: true });
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  const tar = execFileSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 512 << 20 });
  execFileSync(
    'docker',
    [
      ...rig().docker.cliArgs,
      'import',
      '--change',
      'ENV PATH=/usr/local/bin:/usr/bin:/bin',
      '-',
      'node:20-bookworm-slim',
    ],
    { input: tar, stdio: ['pipe', 'ignore', 'pipe'], maxBuffer: 16 << 20 },
  );
}

/**
 * Runs an agent image as deploy/Dockerfile documents it and checks that it reports over MQTT.
 * patience: how many times longer to wait, for an image whose Node is emulated (qemu-user).
 */
async function runAndCheck(image: string, name: string, dir: string, label: string, patience = 1): Promise<void> {
  const port = await freePort();
  const robot = `image-${label}-${process.pid}`;
  mkdirSync(join(dir, 'etc'));
  mkdirSync(join(dir, 'state'));
  writeYaml(join(dir, 'etc'), 'config.yaml', {
    robot: { id: robot },
    mqtt: { embedded: { port } },
    docker: { socketPath: '/var/run/docker.sock' },
  });
  // As deploy/Dockerfile documents it (the rig has no /dev of a robot to mount).
  docker(
    'run',
    '-d',
    '--name',
    name,
    '--network',
    'host',
    '--device-cgroup-rule',
    'c 188:* rmw',
    '--device-cgroup-rule',
    'c 189:* rmw',
    '--device-cgroup-rule',
    'c 81:* rmw',
    '-v',
    `${rig().docker.socketPath}:/var/run/docker.sock`,
    '-v',
    `${join(dir, 'etc')}:/etc/robot-agent:ro`,
    '-v',
    `${join(dir, 'state')}:/var/lib/robot-agent`,
    image,
  );
  // The embedded broker requires the password the agent made in its state dir (mounted here).
  const login = () => ({
    username: 'robot-agent',
    password: readFileSync(join(dir, 'state', 'embedded-broker.password'), 'utf8').trim(),
  });
  const probe = await waitUntil(
    () => MqttProbe.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, ...login() }),
    20_000 * patience,
    `the ${label} agent in its container listening`,
  );
  try {
    await probe.subscribe(`fleet/${robot}/#`);
    const dockerUp = (m: Received) =>
      m.topic === `fleet/${robot}/state/docker` && (JSON.parse(m.text) as AgentState['docker']).available;
    const state = await probe.waitFor(dockerUp, 15_000 * patience, 'state/docker with the engine available');
    const s = JSON.parse(state.text) as AgentState['docker'];
    assert.equal(s.version, '20.10.24+dfsg1');
    const summaryUp = (m: Received) =>
      m.topic === `fleet/${robot}/state` && (JSON.parse(m.text) as StateSummary).docker;
    const summary = await probe.waitFor(summaryUp, 5000 * patience, 'a summary with the engine available');
    const version = JSON.parse(execFileSync('cat', [join(packageRoot(), 'package.json')]).toString()).version;
    assert.equal((JSON.parse(summary.text) as StateSummary).version, version);
    assert.equal(
      (await probe.request(`fleet/${robot}`, 'ping', { id: `in-container-${label}` }, 5000 * patience)).ok,
      true,
    );
  } finally {
    await probe.close();
  }
  // It stops like on a robot: offline within the stop timeout.
  docker('stop', '-t', '10', name);
  assert.match(docker('inspect', '-f', '{{.State.ExitCode}}', name), /^0$/);
}

describe('the agent image (deploy/Dockerfile)', function () {
  this.timeout(180_000);
  const name = `robot-agent-image-test-${process.pid}`;
  const build = (args: string[]) =>
    spawnSync('bash', [join(packageRoot(), 'deploy', 'build-image.sh'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, DOCKER_HOST: `unix://${rig().docker.socketPath}` },
    });

  afterEach(() => {
    if (!rig()) return;
    spawnSync('docker', [...rig().docker.cliArgs, 'rm', '-f', name], { stdio: 'ignore' });
    spawnSync(
      'docker',
      [
        ...rig().docker.cliArgs,
        'image',
        'rm',
        '-f',
        'robot-agent:test',
        'robot-agent:test-amd64',
        'robot-agent:test-arm64',
        'node:20-bookworm-slim',
      ],
      { stdio: 'ignore' },
    );
  });

  it('builds, runs with the Docker socket mounted, and reports the engine over MQTT', async function () {
    needRig(this);
    const dir = tempDir('rfa-image-');
    importNodeBase(dir);
    const built = build(['--platform', 'linux/amd64', 'robot-agent:test']);
    assert.equal(built.status, 0, built.stderr);
    assert.equal(built.stdout.trim().split('\n').at(-1), 'robot-agent:test');
    await runAndCheck('robot-agent:test', name, dir, 'amd64');
  });

  it('builds for linux/amd64 and linux/arm64 in one go; the arm64 image runs (emulated) and reports over MQTT', async function () {
    needRig(this);
    // The arm64 base is made from Debian packages (deploy/base-image.sh): minutes the first time,
    // then cached in .cache/images. The agent then starts under qemu-user (binfmt_misc, flag F).
    this.timeout(900_000);
    const dir = tempDir('rfa-image-');
    importNodeBase(dir);
    const built = build(['robot-agent:test']);
    assert.equal(built.status, 0, built.stderr);
    assert.deepEqual(built.stdout.trim().split('\n'), ['robot-agent:test-amd64', 'robot-agent:test-arm64']);
    assert.equal(docker('image', 'inspect', '-f', '{{.Architecture}}', 'robot-agent:test-amd64'), 'amd64');
    assert.equal(docker('image', 'inspect', '-f', '{{.Architecture}}', 'robot-agent:test-arm64'), 'arm64');
    // What runs is arm64 code: the Node in the image says so.
    const arch = docker('run', '--rm', '--entrypoint', 'node', 'robot-agent:test-arm64', '-p', 'process.arch');
    assert.equal(arch, 'arm64');
    await runAndCheck('robot-agent:test-arm64', name, dir, 'arm64', 6);
  });
});
