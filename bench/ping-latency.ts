/**
 * Command round trip on loopback through the rig's mosquitto (set_tcp_nodelay true): a ping
 * request to a running agent and its answer, beside the same two broker hops with a bare echo
 * client in the agent's place, measured in the same run. Target: ping p50 <= 5 ms, and the agent
 * adding little over the echo (Nagle's algorithm on any socket on the way shows as ~40 ms).
 *
 *   node build/bench/ping-latency.js          (after tsc; starts its own mosquitto)
 *   BENCH_PINGS=2000 node build/bench/ping-latency.js
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { packageRoot } from '../agent/core/package-root.js';
import { MqttProbe } from '../test/helpers/mqtt-probe.js';
import { startMosquitto } from '../test/rig/mosquitto.js';
import { percentile, pollFor, runBench } from './bench-kit.js';

const PINGS = Number(process.env.BENCH_PINGS ?? 500);
const WARMUP = 50;

/** Sequential round trips: send(i) publishes, the i-th answer is awaited; milliseconds each. */
async function roundTrips(
  probe: MqttProbe,
  topic: string,
  send: (i: number) => Promise<unknown>,
  matches: (text: string, i: number) => boolean,
): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < WARMUP + PINGS; i += 1) {
    probe.clear();
    const t0 = performance.now();
    await send(i);
    await probe.waitFor((m) => m.topic === topic && matches(m.text, i), 5000, `round trip ${i}`);
    if (i >= WARMUP) samples.push(performance.now() - t0);
  }
  return samples.sort((a, b) => a - b);
}

function figures(samples: number[]): { p50: number; p95: number; p99: number } {
  return { p50: percentile(samples, 50), p95: percentile(samples, 95), p99: percentile(samples, 99) };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rfa-bench-ping-'));
  const broker = await startMosquitto(join(dir, 'mqtt'));
  const children: ChildProcess[] = [];
  const probes: MqttProbe[] = [];
  try {
    const robot = 'bench-ping';
    const b = `fleet/${robot}`;
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      stringify({
        robot: { id: robot },
        mqtt: { url: broker.url, protocolVersion: 5 },
        docker: { socketPath: join(dir, 'no-docker.sock') },
        state: { dir: join(dir, 'state') },
        log: { level: 'warn' },
      }),
    );
    const root = packageRoot();
    const main = join(root, 'build', 'agent', 'main.js');
    const agent = spawn(process.execPath, [main, 'run', '--config', config], { cwd: root, stdio: 'ignore' });
    children.push(agent);

    const dashboard = await MqttProbe.connect(broker.url, { protocolVersion: 5 });
    probes.push(dashboard);
    await dashboard.subscribe(`${b}/availability`, `${b}/response/ping`, 'bench/echo/out');
    const online = () => dashboard.received.some((m) => m.topic === `${b}/availability` && m.text === 'online');
    await pollFor(() => (online() ? true : undefined), 15_000, 'the agent online');

    // The broker-only baseline: a client that answers every message at once, two hops like a ping.
    const echo = await MqttProbe.connect(broker.url, { protocolVersion: 5 });
    probes.push(echo);
    echo.client.on('message', (topic, payload) => {
      if (topic === 'bench/echo/in') echo.client.publish('bench/echo/out', payload, { qos: 1 });
    });
    await echo.subscribe('bench/echo/in');

    const idOf = (text: string) => (JSON.parse(text) as { id?: unknown }).id;
    const ping = await roundTrips(
      dashboard,
      `${b}/response/ping`,
      (i) => dashboard.client.publishAsync(`${b}/request/ping`, JSON.stringify({ id: `p${i}` }), { qos: 1 }),
      (text, i) => idOf(text) === `p${i}`,
    );
    const bare = await roundTrips(
      dashboard,
      'bench/echo/out',
      (i) => dashboard.client.publishAsync('bench/echo/in', JSON.stringify({ id: `e${i}` }), { qos: 1 }),
      (text, i) => idOf(text) === `e${i}`,
    );
    const p = figures(ping);
    const e = figures(bare);
    const ms = (n: number) => `${n.toFixed(2)} ms`;
    console.log(
      `ping round trip over loopback through mosquitto (set_tcp_nodelay true), ${PINGS} sequential requests ` +
        `after ${WARMUP} warm-up, QoS 1`,
    );
    console.log(`  broker-only echo (two hops): p50 ${ms(e.p50)}, p95 ${ms(e.p95)}, p99 ${ms(e.p99)}`);
    console.log(`  agent ping (two hops):       p50 ${ms(p.p50)}, p95 ${ms(p.p95)}, p99 ${ms(p.p99)}`);
    const ratio = (key: 'p50' | 'p95' | 'p99') => (p[key] / e[key]).toFixed(2);
    console.log(`  ratio agent/echo: p50 ${ratio('p50')}, p95 ${ratio('p95')}, p99 ${ratio('p99')}`);
    console.log(`  ping p50 ${ms(p.p50)} (target <= 5 ms) ${p.p50 <= 5 ? 'OK' : 'OVER'}`);
  } finally {
    for (const probe of probes) await probe.close();
    for (const child of children) child.kill('SIGKILL');
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
