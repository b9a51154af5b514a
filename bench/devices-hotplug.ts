/**
 * Hot-plug latency: from a replug in sysfs and /dev (new devnum, new tty) to the device.changed
 * event on MQTT, p50 and p95 over 50 replugs, for the agent as configured by default (inotify on
 * the device directories, a 5 s fallback poll) and, in the same run, for the old way (no watch,
 * a 250 ms sysfs poll) as the baseline; and what each costs at idle: CPU per fingerprint read
 * times the reads a second (4 for the old poll, 0.2 for the fallback; the watch itself costs
 * nothing while nothing is plugged), beside a full read. The whole agent's idle CPU and RSS:
 * bench/idle-footprint.ts. Prints figures; not part of the test suite.
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

    const modes = [
      { name: 'watch + 5 s fallback poll (default)', devices: { ...devices } },
      { name: 'old: 250 ms poll, no watch (baseline)', devices: { ...devices, watch: false, pollInterval: 250 } },
    ];
    const figures = (samples: number[]) => {
      const sorted = [...samples].sort((a, b) => a - b);
      return `p50 ${percentile(sorted, 50)} ms, p95 ${percentile(sorted, 95)} ms, max ${sorted.at(-1)} ms`;
    };
    for (const mode of modes) {
      const { fromStart, fromEnd } = await replugLatencies(bus, mode.devices);
      console.log(`hot-plug to MQTT event over ${REPLUGS} replugs, ${mode.name}:`);
      console.log(`  from the replug's start ${figures(fromStart)}; from its end ${figures(fromEnd)}`);
    }

    const where = {
      sysfsRoot: bus.sysfsRoot,
      devRoot: bus.devRoot,
      aliases: ['rplidar', 'myserial', 'astradepth', 'astrauvc'],
    };
    const env = { ROBOT_AGENT_DEVICES_SYSFS_ROOT: bus.sysfsRoot, ROBOT_AGENT_DEVICES_DEV_ROOT: bus.devRoot };
    const catalog = loadConfig({ env }).config.devices;
    const fingerprint = cpuPerCall(() => usbFingerprint(where));
    const full = cpuPerCall(() => placeDevices(readUsbSnapshot(where), catalog));
    const share = (us: number, perSecond: number) => `${(((us * perSecond) / 1e6) * 100).toFixed(3)} %`;
    const us = (n: number) => `${n.toFixed(0)} us`;
    const ratio = (full / fingerprint).toFixed(1);
    console.log(`idle watcher, X3: fingerprint ${us(fingerprint)} CPU per read, a full read ${us(full)} (${ratio}x)`);
    console.log(`  old 250 ms poll, 4 reads/s: ${share(fingerprint, 4)} of one core`);
    console.log(`  watch + 5 s fallback, 0.2 reads/s: ${share(fingerprint, 0.2)} (the watch: nothing while idle)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts the agent on the bus, replugs the camera and the board in turn, and stops it. From the
 * start of a replug, as this bench always measured; from its end too, since the fake bus's
 * replug (mknod run as a process, twice) takes tens of milliseconds on a loaded machine, during
 * which this process, the agent's, is busy.
 */
async function replugLatencies(
  bus: FakeUsbBus,
  devices: Record<string, unknown>,
): Promise<{ fromStart: number[]; fromEnd: number[] }> {
  const subject = await startAgent({ devices, log: { level: 'warn' } });
  const broker = `mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`;
  const probe = await MqttProbe.connect(broker, { protocolVersion: 4 });
  try {
    await probe.subscribe(`${subject.base}/events`);
    const fromStart: number[] = [];
    const fromEnd: number[] = [];
    const targets = ['1-1.3', '1-1.4', '1-1.1'];
    for (let i = 0; i < REPLUGS; i += 1) {
      const port = targets[i % targets.length]!;
      probe.clear();
      const t0 = Date.now();
      // A devnum never used before on this bus: each replug is a change whichever mode runs.
      bus.replug(port, { devnum: 20 + (nextDevnum++ % 100) });
      const t1 = Date.now();
      const changed = await probe.waitFor((m) => m.text.includes('"device.changed"'), 10_000, 'device.changed');
      fromStart.push(changed.at - t0);
      fromEnd.push(changed.at - t1);
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
    }
    return { fromStart, fromEnd };
  } finally {
    await probe.close();
    await subject.stop();
  }
}

let nextDevnum = 0;

runBench(main);
