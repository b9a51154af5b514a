/**
 * Live replug latency: from a replug in sysfs (the camera's depth function back with a new
 * devnum) to its node made inside the running container (the container.devices event, raised
 * once the exec that made it has returned), p50 and p95 over 30 replugs; beside it, in the same
 * run, replug to device.changed (the watcher's share), so the container's part shows. Each new
 * node is checked with `stat` inside the container. Prints figures; not part of the test suite.
 *
 *   npm run build && node build/bench/container-replug.js      (root: dockerd, mknod)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { splitDev } from '../agent/containers/device-mappings.js';
import type { AgentEvent } from '../agent/state/event-bus.js';
import { startAgent } from '../test/helpers/agent-harness.js';
import { FakeUsbBus, X3 } from '../test/helpers/fake-sysfs.js';
import { startRig, stopRig } from '../test/rig/index.js';
import { percentile, pollFor, runBench } from './bench-kit.js';

const REPLUGS = 30;

async function main(): Promise<void> {
  const rig = await startRig();
  const dir = mkdtempSync(join(tmpdir(), 'rfa-bench-replug-'));
  try {
    const bus = new FakeUsbBus(dir);
    bus.plug(X3.board());
    bus.plug(X3.cameraDepth());
    bus.plug(X3.cameraRgb());
    const subject = await startAgent({
      docker: { socketPath: rig.docker.socketPath },
      registries: { 'docker.io': { mirror: rig.registry.url } },
      devices: { sysfsRoot: bus.sysfsRoot, devRoot: bus.devRoot, lidar: { checkInterval: 3600 } },
      containers: { ros: { image: rig.fixtures.images.v339, devices: ['camera', 'board'], stopTimeout: 1 } },
      log: { level: 'warn' },
    });
    const events: AgentEvent[] = [];
    subject.agent.bus.subscribe((e) => events.push(e));
    await pollFor(
      () => (subject.agent.store.get().containers[0]?.state === 'running' ? true : undefined),
      60_000,
      'ros running',
    );

    const toNode: number[] = [];
    const toEvent: number[] = [];
    for (let i = 0; i < REPLUGS; i += 1) {
      const devnum = 20 + i;
      const path = `/dev/bus/usb/001/${String(devnum).padStart(3, '0')}`;
      events.length = 0;
      const t0 = Date.now();
      bus.replug('1-1.4', { devnum });
      const changed = await pollFor(() => events.find((e) => e.type === 'device.changed'), 5000, 'device.changed');
      const made = await pollFor(
        () =>
          events.find(
            (e) =>
              e.type === 'container.devices' &&
              (e.made as Array<{ container: string }>).some((m) => m.container === path),
          ),
        5000,
        'container.devices',
      );
      toEvent.push(Date.parse(changed.ts) - t0);
      toNode.push(Date.parse(made.ts) - t0);
      const { major, minor } = splitDev(statSync(join(bus.devRoot, path.slice('/dev/'.length))).rdev);
      const inside = execFileSync('docker', [...rig.docker.cliArgs, 'exec', 'ros', 'stat', '-c', '%t:%T', path])
        .toString()
        .trim();
      if (inside !== `${major.toString(16)}:${minor.toString(16)}`)
        throw new Error(`${path} inside is ${inside}, host is ${major}:${minor}`);
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
    await subject.stop();
    const a = [...toEvent].sort((x, y) => x - y);
    const b = [...toNode].sort((x, y) => x - y);
    console.log(
      `replug to device.changed over ${REPLUGS} replugs (poll every 250 ms): p50 ${percentile(a, 50)} ms, p95 ${percentile(a, 95)} ms`,
    );
    console.log(
      `replug to node inside the running container: p50 ${percentile(b, 50)} ms, p95 ${percentile(b, 95)} ms, max ${b.at(-1)} ms (target < 2000 ms; the container's own share p50 ${percentile(b, 50) - percentile(a, 50)} ms)`,
    );
  } finally {
    await stopRig(rig);
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
