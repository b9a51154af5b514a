/**
 * Bytes a minute per topic that one robot sends to the fleet broker (issue 14.2: at most 1 KiB
 * a minute when nothing happens, at the shipped defaults, heartbeat and metrics included):
 *   - idle: an X3 with its devices attached (fake sysfs, pty lidar) and the ROS container running;
 *   - busy: the same with a lidar replug a minute, plus one update an hour (measured once,
 *     its bytes spread over the hour).
 * The shipped periods (heartbeat 60 s, lidar check 300 s, reconcile 60 s, metrics 30 s) run
 * BENCH_SCALE times faster (default 10: a robot minute lasts 6 s; metrics stop at their 5 s
 * floor), and figures are per robot minute. Beside them, counted from the same store in the
 * same run: what the former publisher would have sent (the whole state on every change, every
 * heartbeat and every metrics sample). Prints figures; not part of the test suite.
 *
 *   npm run build && node build/bench/traffic-budget.js      (root: dockerd, mknod)
 *   BENCH_SECONDS=120 BENCH_SCALE=10 node build/bench/traffic-budget.js
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StateStore } from '../agent/state/state-store.js';
import { startAgent, type AgentUnderTest } from '../test/helpers/agent-harness.js';
import { FakeUsbBus, X3 } from '../test/helpers/fake-sysfs.js';
import { LidarSimulator } from '../test/helpers/lidar-simulator.js';
import { MqttProbe } from '../test/helpers/mqtt-probe.js';
import { formatTraffic, TrafficMeter, type TrafficReport } from '../test/helpers/traffic-meter.js';
import { startRig, stopRig } from '../test/rig/index.js';
import { pollFor, runBench } from './bench-kit.js';

const SCALE = Number(process.env.BENCH_SCALE ?? 10);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const BUDGET = 1024;
const MINUTE_MS = 60_000 / SCALE;
const METRICS_S = Math.max(5, Math.round(30 / SCALE));

/**
 * The former publisher, replayed on the same store: the whole state, coalesced for 250 ms after
 * any change, on every heartbeat, and on every metrics sample (each changed host.metrics then;
 * samples the deadband now keeps out of the store are added back).
 */
class FormerPublisher {
  bytes = 0;
  messages = 0;
  private pending: NodeJS.Timeout | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly off: () => void;
  private hostChanged = false;

  constructor(
    private readonly store: StateStore,
    private readonly topic: string,
  ) {
    this.off = store.onChange((section) => {
      if (section === 'host') this.hostChanged = true;
      this.pending ??= setTimeout(() => {
        this.pending = undefined;
        this.publish();
      }, 250);
    });
    this.timers.push(setInterval(() => this.publish(), MINUTE_MS));
    this.timers.push(
      setInterval(() => {
        if (!this.hostChanged) this.publish();
        this.hostChanged = false;
      }, METRICS_S * 1000),
    );
  }

  private publish(): void {
    this.messages += 1;
    const whole = JSON.stringify({ ...this.store.get(), ts: new Date().toISOString() });
    this.bytes += Buffer.byteLength(this.topic) + Buffer.byteLength(whole);
  }

  reset(): void {
    this.bytes = 0;
    this.messages = 0;
  }

  stop(): void {
    this.off();
    clearTimeout(this.pending);
    for (const t of this.timers) clearInterval(t);
  }
}

function perMinute(bytes: number, ms: number): number {
  return (bytes / ms) * MINUTE_MS;
}

function print(title: string, report: TrafficReport, former: FormerPublisher, extraBytesPerMinute = 0): number {
  const total = perMinute(report.bytes, report.seconds * 1000) + extraBytesPerMinute;
  const formerPerMinute = perMinute(former.bytes, report.seconds * 1000);
  console.log(title);
  for (const line of formatTraffic(report, 60 / SCALE)) console.log(line);
  if (extraBytesPerMinute > 0) {
    const extra = extraBytesPerMinute.toFixed(0).padStart(8);
    console.log(`  ${'+ one update an hour'.padEnd(24)}             ${extra} B/min`);
  }
  console.log(`  => ${total.toFixed(0)} B per robot minute (${(total / 1024).toFixed(2)} KiB)`);
  const ratio = (formerPerMinute / total).toFixed(1);
  const formerFigure = `${former.messages} whole states, ${formatKiB(formerPerMinute)} a robot minute (x${ratio})`;
  console.log(`  former publisher, same store: ${formerFigure}`);
  return total;
}

function formatKiB(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

async function main(): Promise<void> {
  const rig = await startRig();
  const dir = mkdtempSync(join(tmpdir(), 'rfa-bench-traffic-'));
  let subject: AgentUnderTest | undefined;
  let sim: LidarSimulator | undefined;
  let meter: TrafficMeter | undefined;
  let probe: MqttProbe | undefined;
  let former: FormerPublisher | undefined;
  try {
    const bus = new FakeUsbBus(dir);
    sim = await LidarSimulator.start();
    bus.plug(X3.lidar({ ttyTarget: sim.ptyPath }));
    bus.plug(X3.board());
    bus.plug(X3.cameraDepth());
    bus.plug(X3.cameraRgb());
    subject = await startAgent({
      mqtt: { url: rig.mqtt.url, heartbeat: Math.max(5, Math.round(60 / SCALE)) },
      docker: { socketPath: rig.docker.socketPath },
      registries: { 'docker.io': { mirror: rig.registry.url } },
      devices: {
        sysfsRoot: bus.sysfsRoot,
        devRoot: bus.devRoot,
        lidar: { checkInterval: Math.max(10, Math.round(300 / SCALE)), timeout: 300 },
      },
      reconcile: { interval: Math.max(5, Math.round(60 / SCALE)) },
      metrics: { interval: METRICS_S },
      update: { stableSeconds: 2, healthTimeout: 8, lockFile: join(dir, 'no.lock') },
      containers: {
        // 136: the pty standing in for the lidar's ttyUSB on this rig.
        ros: {
          image: rig.fixtures.images.v339,
          devices: ['lidar', 'camera', 'board'],
          deviceMajors: [188, 189, 81, 136],
          stopTimeout: 1,
        },
      },
      log: { level: 'warn' },
    });
    const base = subject.base;
    const store = subject.agent.store;
    meter = await TrafficMeter.start(rig.mqtt.url, base);
    probe = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    await probe.subscribe(`${base}/response/#`);
    former = new FormerPublisher(store, `${base}/state`);
    const ros = () => store.get().containers[0];
    const lidarGood = () => store.get().devices.lidar.health.status === 'good';
    const settled = () => ros()?.state === 'running' && ros()?.inSync && lidarGood();
    await pollFor(() => (settled() ? true : undefined), 90_000, 'ros running, lidar good');
    // Settled: one robot minute with nothing to do.
    await new Promise((r) => setTimeout(r, MINUTE_MS));

    const speed = `shipped defaults ${SCALE}x faster (a robot minute = ${MINUTE_MS / 1000} s)`;
    console.log(`traffic of one robot on the fleet broker: ${speed}, ${SECONDS} s a phase`);
    console.log('  (topic + payload bytes the broker delivered on <b>/#, per robot minute)');
    former.reset();
    let from = Date.now();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const idle = print('idle: X3 devices attached, ros running', meter.report(from), former);
    console.log(`  budget ${BUDGET} B a minute: ${idle <= BUDGET ? 'OK' : 'OVER'}`);

    // One update (and back, so the next run starts alike), measured alone.
    former.reset();
    from = Date.now();
    const request = { id: 'bench-update', container: 'ros', image: rig.fixtures.images.v340 };
    const update = await probe.request(base, 'update', request, 120_000);
    if (update.ok !== true) throw new Error(`update failed: ${JSON.stringify(update).slice(0, 400)}`);
    const updated = () => ros()?.inSync && store.get().update.status === 'done';
    await pollFor(() => (updated() ? true : undefined), 60_000, 'ros updated and in sync');
    await new Promise((r) => setTimeout(r, 1000));
    const updateReport = meter.report(from);
    const updateBytes = updateReport.bytes;
    const formerUpdate = former.bytes;
    const took = `${updateReport.messages} messages, ${formatKiB(updateBytes)} in ${updateReport.seconds.toFixed(1)} s`;
    console.log(`one update (3.3.9 -> 3.4.0): ${took} (former publisher: ${formatKiB(formerUpdate)} of whole states)`);

    // Busy: a lidar replug every robot minute.
    former.reset();
    from = Date.now();
    const end = from + SECONDS * 1000;
    for (let devnum = 40; Date.now() < end; devnum += 1) {
      bus.replug('1-1.2', { devnum });
      await new Promise((r) => setTimeout(r, Math.min(MINUTE_MS, Math.max(0, end - Date.now()))));
    }
    const busyTitle = 'busy: a lidar replug a minute, one update an hour';
    const busy = print(busyTitle, meter.report(from), former, updateBytes / 60);
    const asWhole = (formerUpdate / 60).toFixed(0);
    const spread = `${(updateBytes / 60).toFixed(0)} B a minute over its hour; as whole states ${asWhole}`;
    console.log(`  (the update alone: ${spread})`);
    const fleet = ((idle * 5000) / 1024 / 1024).toFixed(1);
    console.log(`summary: idle ${idle.toFixed(0)} B/min, busy ${busy.toFixed(0)} B/min; 5,000 idle: ${fleet} MiB/min`);
  } finally {
    former?.stop();
    await meter?.close();
    await probe?.close();
    await subject?.stop();
    await sim?.stop();
    await stopRig(rig);
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
