/**
 * Idle footprint of the agent: RSS and CPU over 60 s while connected to the rig's broker and
 * Docker engine with metrics and heartbeat on, watching a ROSMASTER X3's USB devices (fake sysfs), beside a bare `node` that loads the same
 * dependencies and idles, measured in the same run. Targets: RSS at most 1.25 x the baseline,
 * CPU under 1 % of one core.
 *
 *   npm run bench            (builds, starts the rig, prints the figures)
 *   BENCH_SECONDS=20 npm run bench
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { packageRoot } from '../agent/package-root.js';
import { FakeUsbBus, X3 } from '../test/helpers/fake-sysfs.js';
import { startRig, stopRig } from '../test/rig/index.js';
import { sampleProcesses } from './process-sampler.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const WARMUP_MS = 5000;

const BASELINE = `
  await Promise.all(['dockerode', 'mqtt', 'systeminformation', 'aedes', 'ajv', 'ajv-formats', 'yaml', 'node-cron', 'serialport'].map((m) => import(m)));
  setInterval(() => {}, 1 << 30);
`;

async function main(): Promise<void> {
  const rig = await startRig();
  const dir = mkdtempSync(join(tmpdir(), 'rfa-bench-'));
  const children: ChildProcess[] = [];
  try {
    // The devices a robot has, so the watcher does its real work every poll.
    const bus = new FakeUsbBus(join(dir, 'usb'));
    for (const device of [X3.lidar(), X3.board(), X3.cameraDepth(), X3.cameraRgb()]) bus.plug(device);
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      stringify({
        robot: { id: 'bench-robot' },
        mqtt: { url: rig.mqtt.url, heartbeat: 60 },
        docker: { socketPath: rig.docker.socketPath },
        state: { dir: join(dir, 'state') },
        devices: { sysfsRoot: bus.sysfsRoot, devRoot: bus.devRoot },
        metrics: { interval: 30 },
        log: { level: 'warn' },
      }),
    );
    const root = packageRoot();
    const agent = spawn(process.execPath, [join(root, 'build', 'agent', 'main.js'), 'run', '--config', config], { cwd: root, stdio: 'ignore' });
    const baseline = spawn(process.execPath, ['--input-type=module', '-e', BASELINE], { cwd: root, stdio: 'ignore' });
    children.push(agent, baseline);
    await new Promise((r) => setTimeout(r, WARMUP_MS));
    for (const [name, child] of Object.entries({ agent, baseline })) {
      if (child.exitCode !== null) throw new Error(`${name} exited early with ${child.exitCode}`);
    }
    const figures = await sampleProcesses({ agent: agent.pid!, baseline: baseline.pid! }, SECONDS);
    const a = figures.agent!;
    const b = figures.baseline!;
    const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
    const rssRatio = a.rssMean / b.rssMean;
    console.log(`idle footprint over ${a.seconds.toFixed(0)} s (after ${WARMUP_MS / 1000} s warm-up), agent connected to the rig's broker and engine, watching the X3's devices`);
    console.log(`  baseline (node + same deps, idle): RSS mean ${mb(b.rssMean)} MiB, max ${mb(b.rssMax)} MiB, CPU ${b.cpuPercent.toFixed(2)} % of one core`);
    console.log(`  agent:                             RSS mean ${mb(a.rssMean)} MiB, max ${mb(a.rssMax)} MiB, CPU ${a.cpuPercent.toFixed(2)} % of one core`);
    console.log(`  RSS ratio agent/baseline: ${rssRatio.toFixed(2)} (target <= 1.25) ${rssRatio <= 1.25 ? 'OK' : 'OVER'}`);
    console.log(`  agent idle CPU: ${a.cpuPercent.toFixed(2)} % (target < 1 %) ${a.cpuPercent < 1 ? 'OK' : 'OVER'}`);
  } finally {
    for (const child of children) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await stopRig(rig);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
