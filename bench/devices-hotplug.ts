/**
 * Hot-plug latency: from a replug in sysfs (new devnum, new tty) to the device.changed event on
 * MQTT, p50 and p95 over 50 replugs; and what the watcher costs at idle: CPU per poll of the
 * fingerprint it reads every 250 ms, beside a full read (what it would cost without the
 * fingerprint), in the same run. The whole agent's idle CPU and RSS, watcher included, against a
 * bare-node baseline: bench/idle-footprint.ts. Prints figures; not part of the test suite.
 *
 *   npm run build && node build/bench/devices-hotplug.js      (root: mknod)
 */
import { rmSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../agent/config/load-config.js';
import { placeDevices } from '../agent/devices/device-resolver.js';
import { readUsbSnapshot, usbFingerprint } from '../agent/devices/sysfs-usb.js';
import { startAgent } from '../test/helpers/agent-harness.js';
import { FakeUsbBus, X3 } from '../test/helpers/fake-sysfs.js';
import { MqttProbe } from '../test/helpers/mqtt-probe.js';
import { percentile, runBench } from './bench-kit.js';

const REPLUGS = 50;

/** CPU microseconds per call, over many calls. */
function cpuPerCall(fn: () => void, calls = 2000): number {
  for (let i = 0; i < 100; i += 1) fn();
  const t0 = process.cpuUsage();
  for (let i = 0; i < calls; i += 1) fn();
  const used = process.cpuUsage(t0);
  return (used.user + used.system) / calls;
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

    const where = { sysfsRoot: bus.sysfsRoot, devRoot: bus.devRoot, aliases: ['rplidar', 'myserial', 'astradepth', 'astrauvc'] };
    const catalog = loadConfig({ env: { ROBOT_AGENT_DEVICES_SYSFS_ROOT: bus.sysfsRoot, ROBOT_AGENT_DEVICES_DEV_ROOT: bus.devRoot } }).config.devices;
    const fingerprint = cpuPerCall(() => usbFingerprint(where));
    const full = cpuPerCall(() => placeDevices(readUsbSnapshot(where), catalog));
    const pollsPerSecond = 1000 / 250;
    const share = (us: number) => ((us * pollsPerSecond) / 1e6) * 100;
    console.log(`watcher at idle, X3 bus: fingerprint ${fingerprint.toFixed(0)} us of CPU per poll (${share(fingerprint).toFixed(3)} % of one core at 4 polls/s); a full read ${full.toFixed(0)} us (${share(full).toFixed(3)} %), ratio ${(full / fingerprint).toFixed(1)}x`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
