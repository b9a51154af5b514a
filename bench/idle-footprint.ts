/**
 * Idle footprint of the agent (issue 14.6, the cost of one robot): RSS and CPU while connected
 * to the rig's broker and Docker engine with ros running (its lidar, camera and board mapped),
 * watching a ROSMASTER X3's USB devices (fake sysfs, the lidar answering on a pty), metrics and
 * heartbeat on. Beside it, in the same windows: a bare `node` and a `node` that loads every
 * dependency and idles. The agent runs in turn as installed (the environment of
 * systemd/robot-agent.service, hot-plug by inotify with the 5 s fallback poll), with the old
 * 250 ms sysfs poll and no watch (the baseline for CPU), and without the unit's environment
 * (what MALLOC_ARENA_MAX saves). Targets: RSS at most 80 MiB, idle CPU under 0.5 % of a core.
 *
 *   npm run bench            (builds, starts the rig, prints the figures)
 *   BENCH_SECONDS=20 BENCH_WARMUP_SECONDS=10 node build/bench/idle-footprint.js
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../agent/core/package-root.js';
import { FakeUsbBus, X3 } from '../test/helpers/fake-sysfs.js';
import { LidarSimulator } from '../test/helpers/lidar-simulator.js';
import { MqttProbe } from '../test/helpers/mqtt-probe.js';
import { startRig, stopRig, type Rig } from '../test/rig/index.js';
import { pollFor, spawnBenchAgent } from './bench-kit.js';
import { sampleProcesses, type ProcessFootprint } from './process-sampler.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
/**
 * Start-up garbage goes within the first minute or two (V8 shrinks its heap once idle, for node
 * with the dependencies too): figures from the first minute say little.
 */
const WARMUP_MS = Number(process.env.BENCH_WARMUP_SECONDS ?? 90) * 1000;

/** Imports every dependency package.json lists (read at run time: the baseline follows the list) and idles. */
function dependenciesScript(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const names = JSON.stringify(Object.keys(pkg.dependencies));
  return `await Promise.all(${names}.map((m) => import(m)));\nsetInterval(() => {}, 1 << 30);`;
}
const BARE = 'setInterval(() => {}, 1 << 30);';

/** Environment= lines of the systemd unit: the agent is measured as robots run it. */
function unitEnvironment(): Record<string, string> {
  const unit = readFileSync(join(packageRoot(), 'systemd', 'robot-agent.service'), 'utf8');
  const pairs = [...unit.matchAll(/^Environment=(\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!.trim()] as const);
  return Object.fromEntries(pairs);
}

interface Variant {
  name: string;
  devices: Record<string, unknown>;
  env: Record<string, string>;
}

async function main(): Promise<void> {
  const rig = await startRig();
  const dir = mkdtempSync(join(tmpdir(), 'rfa-bench-'));
  const children: ChildProcess[] = [];
  const sim = await LidarSimulator.start();
  try {
    // The devices a robot has, so the watcher and ros have their real work.
    const bus = new FakeUsbBus(join(dir, 'usb'));
    const x3 = [X3.lidar({ ttyTarget: sim.ptyPath }), X3.board(), X3.cameraDepth(), X3.cameraRgb()];
    for (const device of x3) bus.plug(device);
    const root = packageRoot();
    const idle = (script: string) =>
      spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: root, stdio: 'ignore' });
    const bare = idle(BARE);
    const dependencies = idle(dependenciesScript());
    children.push(bare, dependencies);

    const unit = unitEnvironment();
    const variants: Variant[] = [
      { name: 'agent as installed (inotify + 5 s poll)', devices: {}, env: unit },
      { name: 'agent, old 250 ms poll, no watch', devices: { watch: false, pollInterval: 250 }, env: unit },
      { name: 'agent without the unit environment', devices: {}, env: {} },
    ];
    const rows: Array<{
      name: string;
      agent: ProcessFootprint;
      bare: ProcessFootprint;
      dependencies: ProcessFootprint;
    }> = [];
    // Not measured: an agent that pulls ros's image and creates it. A pull's buffers stay in the
    // RSS of the agent that did it (malloc keeps them), which is not the idle robot this measures.
    const priming = await startAgentProcess(rig, dir, bus, variants[0]!);
    children.push(priming);
    await stopAgentProcess(priming);
    for (const variant of variants) {
      const agent = await startAgentProcess(rig, dir, bus, variant);
      children.push(agent);
      try {
        await new Promise((r) => setTimeout(r, WARMUP_MS));
        for (const [name, child] of Object.entries({ agent, bare, dependencies })) {
          if (child.exitCode !== null) throw new Error(`${name} exited early with ${child.exitCode}`);
        }
        const f = await sampleProcesses(
          { agent: agent.pid!, bare: bare.pid!, dependencies: dependencies.pid! },
          SECONDS,
        );
        rows.push({ name: variant.name, agent: f.agent!, bare: f.bare!, dependencies: f.dependencies! });
      } finally {
        await stopAgentProcess(agent);
      }
    }

    const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
    const line = (label: string, f: ProcessFootprint) =>
      `  ${label.padEnd(42)} RSS mean ${mb(f.rssMean)} MiB (${mb(f.rssMin)}-${mb(f.rssMax)}), CPU ${f.cpuPercent.toFixed(2)} % of one core`;
    console.log(
      `idle footprint, ${SECONDS} s windows one after the other, each after ${WARMUP_MS / 1000} s of warm-up: ` +
        `ros running with the X3's devices, the agent on the rig's broker and engine (unit environment: ${JSON.stringify(unit)})`,
    );
    for (const row of rows) {
      console.log(line(row.name, row.agent));
      console.log(line('  same window: bare node', row.bare));
      console.log(line('  same window: node + every dependency', row.dependencies));
    }
    const installed = rows[0]!.agent;
    const rssOk = installed.rssMean <= 80 * 1024 * 1024;
    const cpuOk = installed.cpuPercent < 0.5;
    console.log(
      `  as installed: RSS ${mb(installed.rssMean)} MiB (target <= 80) ${rssOk ? 'OK' : 'OVER'}; CPU ${installed.cpuPercent.toFixed(2)} % (target < 0.5 %) ${cpuOk ? 'OK' : 'OVER'}`,
    );
  } finally {
    for (const child of children) child.kill('SIGKILL');
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
    await stopRig(rig);
  }
}

async function stopAgentProcess(agent: ChildProcess): Promise<void> {
  const exited = new Promise((r) => (agent.exitCode !== null ? r(undefined) : agent.once('exit', r)));
  agent.kill('SIGTERM');
  await exited;
}

/** The agent as a process with ros in its config; resolves once ros runs (pulled the first time). */
async function startAgentProcess(rig: Rig, dir: string, bus: FakeUsbBus, variant: Variant): Promise<ChildProcess> {
  const robot = 'bench-idle';
  const env: NodeJS.ProcessEnv = { ...process.env, ...variant.env };
  if (!('MALLOC_ARENA_MAX' in variant.env)) delete env.MALLOC_ARENA_MAX;
  const config = {
    robot: { id: robot },
    mqtt: { url: rig.mqtt.url, heartbeat: 60 },
    docker: { socketPath: rig.docker.socketPath },
    registries: { 'docker.io': { mirror: rig.registry.url } },
    // One state dir for every variant: the next agent adopts the ros the first one started.
    state: { dir: join(dir, 'state') },
    devices: { sysfsRoot: bus.sysfsRoot, devRoot: bus.devRoot, ...variant.devices },
    containers: { ros: { image: rig.fixtures.images.v339, devices: ['lidar', 'camera', 'board'], stopTimeout: 1 } },
    metrics: { interval: 30 },
    log: { level: 'warn' },
  };
  const agent = spawnBenchAgent(dir, config, { env });
  const probe = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
  try {
    const b = `fleet/${robot}`;
    await probe.subscribe(`${b}/response/state`);
    let n = 0;
    const rosRunning = () =>
      probe.received.some((m) => {
        const result = (JSON.parse(m.text) as { result?: { containers?: Array<{ name: string; state: string }> } })
          .result;
        return result?.containers?.some((c) => c.name === 'ros' && c.state === 'running') === true;
      });
    // Asked every second: the first answers come before ros is created.
    const asking = setInterval(
      () => probe.client.publish(`${b}/request/state`, JSON.stringify({ id: `s${n++}` }), { qos: 1 }),
      1000,
    );
    try {
      await pollFor(
        () => (rosRunning() ? true : agent.exitCode !== null ? false : undefined),
        180_000,
        `ros running (${variant.name})`,
      );
    } finally {
      clearInterval(asking);
    }
    if (agent.exitCode !== null) throw new Error(`the agent exited with ${agent.exitCode}`);
  } finally {
    await probe.close();
  }
  return agent;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
