/**
 * Hot-plug latency: from a replug in sysfs (new devnum, new tty) to the device.changed event on
 * MQTT, p50 and p95 over 50 replugs; and the CPU the device watcher costs at idle (the agent
 * with and without the fake X3 bus, same run). Prints figures; not part of the test suite.
 *
 *   npm run build && node build/bench/devices-hotplug.js      (root: mknod)
 */
import { rmSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent } from '../test/helpers/agent-harness.js';
import { FakeUsbBus, X3 } from '../test/helpers/fake-sysfs.js';
import { MqttProbe } from '../test/helpers/mqtt-probe.js';

const REPLUGS = 50;
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 20);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function idleCpu(devices: Record<string, unknown>): Promise<number> {
  const subject = await startAgent({ devices, log: { level: 'warn' } });
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const t0 = process.cpuUsage();
    const w0 = Date.now();
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const used = process.cpuUsage(t0);
    return ((used.user + used.system) / 1000 / (Date.now() - w0)) * 100;
  } finally {
    await subject.stop();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rfa-bench-usb-'));
  try {
    const bus = new FakeUsbBus(dir);
    bus.plug(X3.lidar());
    bus.plug(X3.board());
    bus.plug(X3.cameraDepth());
    bus.plug(X3.cameraRgb());
    const devices = { sysfsRoot: bus.sysfsRoot, devRoot: bus.devRoot, lidar: { checkInterval: 3600, timeout: 200 } };

    const subject = await startAgent({ devices, log: { level: 'warn' } });
    const probe = await MqttProbe.connect(`mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`, { protocolVersion: 4 });
    await probe.subscribe(`${subject.base}/events`);
    const latencies: number[] = [];
    const targets = ['1-1.3', '1-1.4', '1-1.1'];
    for (let i = 0; i < REPLUGS; i += 1) {
      const port = targets[i % targets.length]!;
      probe.clear();
      const t0 = Date.now();
      bus.replug(port, { devnum: 20 + i });
      await probe.waitFor((m) => m.text.includes('"device.changed"'), 5000, 'device.changed');
      latencies.push(probe.received.find((m) => m.text.includes('"device.changed"'))!.at - t0);
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
    }
    await probe.close();
    await subject.stop();
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(`hot-plug to MQTT event over ${REPLUGS} replugs (poll every 250 ms): p50 ${percentile(sorted, 50)} ms, p95 ${percentile(sorted, 95)} ms, max ${sorted.at(-1)} ms (target p95 < 1000 ms)`);

    const without = await idleCpu({ sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') });
    const withBus = await idleCpu(devices);
    console.log(`agent idle CPU over ${IDLE_SECONDS} s, in-process with its embedded broker: no devices ${without.toFixed(2)} %, X3 bus watched ${withBus.toFixed(2)} % of one core; the watcher costs ${(withBus - without).toFixed(2)} points (budget: the whole agent under 1 %)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
