/**
 * Soak: the real agent (build/agent/main.js) on the rig for SOAK_MINUTES under a steady mixed
 * load: pings, state requests, lidar replugs (fake sysfs, the lidar on a pty) and container
 * commands on a running ros. Prints the RSS slope (MiB/hour, least squares over the second half),
 * the V8 heap after a full GC (through the inspector), CPU, file descriptors, log volume, and the
 * ping round trip p50/p95/p99 beside a broker-only floor (an echo client through the same
 * mosquitto, in the same run), as ratios. Then, load still on, the constructors that grew most
 * between two heap snapshots SOAK_DIFF_MINUTES apart, taken after the measured window: a snapshot
 * makes the agent allocate ~80 MiB that malloc keeps, and that pool would absorb native growth and
 * flatten the slope. A figure every minute goes to stdout, so a long run's log holds partial
 * figures; SIGINT or SIGTERM ends the window early, prints, and cleans up. Prints figures; never
 * a timed test.
 *
 *   npm run build && node build/bench/soak.js                  (root: dockerd, mknod)
 *   SOAK_MINUTES=60 nohup node build/bench/soak.js > /work/soak-60m.log 2>&1 &
 *
 * Knobs (0 turns a load off): SOAK_MINUTES 20, SOAK_PING_MS 200, SOAK_STATE_MS 2000,
 * SOAK_REPLUG_MS 5000, SOAK_CONTAINER_MS 60000 (restart, stop, start of ros in turn),
 * SOAK_GC_MS 60000 (heap after GC), SOAK_DIFF_MINUTES 5 (0: no heap snapshots).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { packageRoot } from '../agent/core/package-root.js';
import { FakeUsbBus, X3 } from '../test/helpers/fake-sysfs.js';
import { LidarSimulator } from '../test/helpers/lidar-simulator.js';
import { MqttProbe } from '../test/helpers/mqtt-probe.js';
import { startRig, stopRig } from '../test/rig/index.js';
import { freePort } from '../test/rig/net.js';
import { percentile, pollFor, runBench } from './bench-kit.js';
import {
  formatGrowth,
  heapGrowth,
  InspectorSession,
  totalSize,
  type HeapSummary,
  type MemoryAfterGc,
} from './heap-diff.js';

const knob = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const MINUTES = knob('SOAK_MINUTES', 20);
const PING_MS = knob('SOAK_PING_MS', 200);
const STATE_MS = knob('SOAK_STATE_MS', 2000);
const REPLUG_MS = knob('SOAK_REPLUG_MS', 5000);
const CONTAINER_MS = knob('SOAK_CONTAINER_MS', 60_000);
const GC_MS = knob('SOAK_GC_MS', 60_000);
const DIFF_MINUTES = knob('SOAK_DIFF_MINUTES', 5);
const SAMPLE_MS = 5000;
const REPORT_MS = 60_000;
/** A request unanswered this long is counted lost and forgotten (the bench's own memory stays bounded). */
const LOST_MS = 10_000;
const CLK_TCK = 100;
const MiB = 1024 * 1024;

/** What /proc says about a process now. */
interface ProcSample {
  t: number;
  rss: number;
  rssAnon: number;
  cpuTicks: number;
  threads: number;
  fds: number;
}

function procSample(pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    t: Date.now(),
    rss: kb('VmRSS'),
    rssAnon: kb('RssAnon'),
    cpuTicks: Number(fields[11]) + Number(fields[12]),
    threads: Number(/Threads:\s+(\d+)/.exec(status)?.[1] ?? 0),
    fds: readdirSync(`/proc/${pid}/fd`).length,
  };
}

/** Least-squares slope of value over time, in value units per hour. */
export function slopePerHour(points: Array<{ t: number; v: number }>): number {
  if (points.length < 2) return Number.NaN;
  const n = points.length;
  const xs = points.map((p) => p.t / 3_600_000);
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = points.reduce((a, p) => a + p.v, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i += 1) {
    num += (xs[i]! - mx) * (points[i]!.v - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

/** Round trips of requests matched by id, with a bound on how many may be outstanding. */
class RoundTrips {
  readonly samples: Array<{ t: number; ms: number }> = [];
  private readonly outstanding = new Map<string, number>();
  sent = 0;
  lost = 0;
  answeredNotOk = new Map<string, number>();

  start(id: string): void {
    this.sent += 1;
    this.outstanding.set(id, performance.now());
  }

  finish(id: string, ok = true, code = ''): void {
    const t0 = this.outstanding.get(id);
    if (t0 === undefined) return;
    this.outstanding.delete(id);
    this.samples.push({ t: Date.now(), ms: performance.now() - t0 });
    if (!ok) this.answeredNotOk.set(code, (this.answeredNotOk.get(code) ?? 0) + 1);
  }

  expire(): void {
    const now = performance.now();
    for (const [id, t0] of this.outstanding) {
      if (now - t0 > LOST_MS) {
        this.outstanding.delete(id);
        this.lost += 1;
      }
    }
  }

  figures(since = 0): { n: number; p50: number; p95: number; p99: number; max: number } {
    const sorted = this.samples
      .filter((s) => s.t >= since)
      .map((s) => s.ms)
      .sort((a, b) => a - b);
    if (sorted.length === 0) return { n: 0, p50: NaN, p95: NaN, p99: NaN, max: NaN };
    const at = (p: number) => percentile(sorted, p);
    return { n: sorted.length, p50: at(50), p95: at(95), p99: at(99), max: sorted.at(-1)! };
  }
}

const mib = (n: number) => (n / MiB).toFixed(1);
const ms = (n: number) => (Number.isNaN(n) ? '-' : n.toFixed(2));

async function main(): Promise<void> {
  const rig = await startRig();
  const dir = mkdtempSync(join(tmpdir(), 'rfa-bench-soak-'));
  const children: ChildProcess[] = [];
  const probes: MqttProbe[] = [];
  const timers: NodeJS.Timeout[] = [];
  let sim: LidarSimulator | undefined;
  let session: InspectorSession | undefined;
  try {
    // A ROSMASTER X3's bus, the lidar answering on a pty, so every replug is probed for real.
    sim = await LidarSimulator.start();
    const bus = new FakeUsbBus(join(dir, 'usb'));
    bus.plug(X3.lidar({ ttyTarget: sim.ptyPath }));
    bus.plug(X3.board());
    bus.plug(X3.cameraDepth());
    bus.plug(X3.cameraRgb());

    const robot = 'bench-soak';
    const b = `fleet/${robot}`;
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      stringify({
        robot: { id: robot },
        mqtt: { url: rig.mqtt.url, protocolVersion: 5 },
        docker: { socketPath: rig.docker.socketPath },
        registries: { 'docker.io': { mirror: rig.registry.url } },
        state: { dir: join(dir, 'state') },
        devices: { sysfsRoot: bus.sysfsRoot, devRoot: bus.devRoot },
        containers: { ros: { image: rig.fixtures.images.v339, devices: ['lidar', 'camera', 'board'], stopTimeout: 1 } },
        // The default level, so the log volume is what a robot writes.
        log: { level: 'info' },
      }),
    );
    const root = packageRoot();
    const inspectPort = await freePort();
    const logFile = join(dir, 'agent.log');
    const logFd = openSync(logFile, 'w');
    const agent = spawn(
      process.execPath,
      [`--inspect=127.0.0.1:${inspectPort}`, join(root, 'build', 'agent', 'main.js'), 'run', '--config', config],
      { cwd: root, stdio: ['ignore', logFd, logFd] },
    );
    closeSync(logFd);
    children.push(agent);
    const pid = agent.pid!;

    const dashboard = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    probes.push(dashboard);
    await dashboard.subscribe(`${b}/availability`, `${b}/response/#`, `${b}/events`, 'bench/echo/out');
    const online = () => dashboard.received.some((m) => m.topic === `${b}/availability` && m.text === 'online');
    await pollFor(() => (online() ? true : undefined), 30_000, 'the agent online');
    session = await InspectorSession.attach(inspectPort);

    // ros running with its devices before the clock starts.
    let rosRunning = false;
    const stateTrips = new RoundTrips();
    const pings = new RoundTrips();
    const echoes = new RoundTrips();
    const commands = new RoundTrips();
    const events = new Map<string, number>();
    let stateBytes = 0;
    let stateLargest = 0;
    // The agent's own counters from the newest state: a buffer that fills shows here.
    let linkStats: Record<string, unknown> = {};
    dashboard.client.on('message', (topic, payload) => {
      if (topic === 'bench/echo/out') {
        echoes.finish(payload.toString());
        return;
      }
      if (topic === `${b}/events`) {
        const type = (JSON.parse(payload.toString()) as { type?: string }).type ?? '?';
        events.set(type, (events.get(type) ?? 0) + 1);
        return;
      }
      if (!topic.startsWith(`${b}/response/`)) return;
      type Answer = { id: string; ok: boolean; error?: { code: string }; result?: unknown };
      const answer = JSON.parse(payload.toString()) as Answer;
      const command = topic.slice(`${b}/response/`.length);
      if (command === 'ping') pings.finish(answer.id, answer.ok, answer.error?.code);
      else if (command === 'state') {
        stateTrips.finish(answer.id, answer.ok, answer.error?.code);
        stateBytes += payload.length;
        stateLargest = Math.max(stateLargest, payload.length);
        type Seen = { agent?: { mqtt?: Record<string, unknown> }; containers?: Array<{ name: string; state: string }> };
        const seen = answer.result as Seen | undefined;
        linkStats = seen?.agent?.mqtt ?? linkStats;
        const ros = seen?.containers?.find((c) => c.name === 'ros');
        if (ros?.state === 'running') rosRunning = true;
      } else commands.finish(answer.id, answer.ok, `${command}:${answer.error?.code ?? ''}`);
    });
    // The probe keeps every message for waitFor; this bench reads them as they come.
    timers.push(setInterval(() => dashboard.clear(), 1000));

    // The broker-only floor: a client that answers every message at once, two hops like a ping.
    const echo = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    probes.push(echo);
    echo.client.on('message', (topic, payload) => {
      if (topic === 'bench/echo/in') echo.client.publish('bench/echo/out', payload, { qos: 1 });
    });
    timers.push(setInterval(() => echo.clear(), 1000));
    await echo.subscribe('bench/echo/in');

    let n = 0;
    const request = (command: string, body: Record<string, unknown>, trips: RoundTrips) => {
      const id = `${command[0]}${n++}`;
      trips.start(id);
      dashboard.client.publish(`${b}/request/${command}`, JSON.stringify({ id, ...body }), { qos: 1 });
    };
    // Asked again every second: the first answers come before ros is created.
    const asking = setInterval(() => request('state', {}, stateTrips), 1000);
    try {
      await pollFor(() => (rosRunning ? true : undefined), 120_000, 'ros running');
    } finally {
      clearInterval(asking);
    }
    const startup = procSample(pid);
    console.log(
      `soak: ${MINUTES} min; ping every ${PING_MS} ms, state every ${STATE_MS} ms, ` +
        `lidar replug every ${REPLUG_MS} ms, restart/stop/start of ros every ${CONTAINER_MS} ms (0 = off); ` +
        `agent pid ${pid}, RSS at start ${mib(startup.rss)} MiB`,
    );

    const every = (period: number, fn: () => void) => {
      if (period > 0) timers.push(setInterval(fn, period));
    };
    const t0 = Date.now();
    let end = t0 + MINUTES * 60_000;
    let wake: () => void = () => undefined;
    // A soak stopped by hand still prints what it measured, and leaves no rig behind.
    const early = () => {
      console.log('  stopped early: figures over the time run so far');
      end = Date.now();
      wake();
    };
    process.once('SIGINT', early);
    process.once('SIGTERM', early);

    every(PING_MS, () => request('ping', {}, pings));
    // Half a period after each ping, so the two never queue behind each other in the broker.
    if (PING_MS > 0) {
      setTimeout(() => {
        every(PING_MS, () => {
          const id = `e${n++}`;
          echoes.start(id);
          dashboard.client.publish('bench/echo/in', id, { qos: 1 });
        });
      }, PING_MS / 2);
    }
    every(STATE_MS, () => request('state', {}, stateTrips));
    let replugs = 0;
    every(REPLUG_MS, () => {
      // A new devnum each time, as the kernel gives; the same pty: the lidar is probed on attach.
      bus.replug('1-1.2', { devnum: 10 + (replugs % 100) });
      replugs += 1;
    });
    const cycle = ['restart', 'stop', 'start'];
    let containerCommands = 0;
    every(CONTAINER_MS, () => request(cycle[containerCommands++ % cycle.length]!, { name: 'ros' }, commands));
    every(1000, () => [pings, echoes, stateTrips].forEach((t) => t.expire()));
    // Container commands may legitimately take seconds; only an answer that never comes is lost.
    every(5000, () => commands.expire());

    const samples: ProcSample[] = [];
    const heap: Array<MemoryAfterGc & { t: number }> = [];
    every(SAMPLE_MS, () => samples.push(procSample(pid)));
    samples.push(procSample(pid));
    const readHeap = async () => {
      try {
        heap.push({ t: Date.now(), ...(await session!.memoryAfterGc()) });
      } catch (err) {
        console.log(`  heap read failed: ${String(err)}`);
      }
    };
    every(GC_MS, () => void readHeap());
    await readHeap();

    const progress = () => {
      const s = samples.at(-1)!;
      const h = heap.at(-1);
      const minute = pings.figures(Date.now() - REPORT_MS);
      const floor = echoes.figures(Date.now() - REPORT_MS);
      const cpu = ((s.cpuTicks - startup.cpuTicks) / CLK_TCK / ((s.t - startup.t) / 1000)) * 100;
      console.log(
        `  ${((Date.now() - t0) / 60_000).toFixed(1).padStart(5)} min: ` +
          `RSS ${mib(s.rss)} MiB (anon ${mib(s.rssAnon)}), ` +
          `heap after GC ${h ? mib(h.heapUsed) : '-'} MiB, external ${h ? mib(h.external) : '-'} MiB, fds ${s.fds}, ` +
          `threads ${s.threads}, CPU ${cpu.toFixed(1)} %; ` +
          `last minute ping p50 ${ms(minute.p50)} p99 ${ms(minute.p99)} ms ` +
          `(echo ${ms(floor.p50)} / ${ms(floor.p99)}); lost ${pings.lost}; replugs ${replugs}; ` +
          `log ${(statSync(logFile).size / 1024).toFixed(0)} KiB`,
      );
    };
    const sleep = (period: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, period);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    const agentAlive = () => {
      if (agent.exitCode !== null || agent.signalCode !== null) {
        throw new Error(`the agent exited (${agent.exitCode ?? agent.signalCode})`);
      }
    };
    while (Date.now() < end) {
      await sleep(Math.min(REPORT_MS, end - Date.now()));
      agentAlive();
      progress();
    }
    // Let the last answers come in before counting what was lost.
    await new Promise((r) => setTimeout(r, 2000));
    const last = procSample(pid);
    samples.push(last);
    await readHeap();
    const half = t0 + (last.t - t0) / 2;

    const window = samples.filter((s) => s.t >= half);
    const rssSlope = slopePerHour(window.map((s) => ({ t: s.t, v: s.rss / MiB })));
    const anonSlope = slopePerHour(window.map((s) => ({ t: s.t, v: s.rssAnon / MiB })));
    const heapWindow = heap.filter((h) => h.t >= half);
    const heapSlope = slopePerHour(heapWindow.map((h) => ({ t: h.t, v: h.heapUsed / MiB })));
    const externalSlope = slopePerHour(heapWindow.map((h) => ({ t: h.t, v: h.external / MiB })));
    const fdSlope = slopePerHour(window.map((s) => ({ t: s.t, v: s.fds })));
    const cpu = ((last.cpuTicks - startup.cpuTicks) / CLK_TCK / ((last.t - startup.t) / 1000)) * 100;
    const first = samples[0]!;
    const h0 = heap[0]!;
    const h1 = heap.at(-1)!;
    const p = pings.figures();
    const e = echoes.figures();
    const st = stateTrips.figures();
    const logBytes = statSync(logFile).size;
    const logLines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean).length;
    const minutes = (last.t - t0) / 60_000;

    const over = `slopes: least squares over the second half, ${window.length} samples`;
    console.log(`soak over ${minutes.toFixed(1)} min (${over})`);
    console.log(
      `  RSS ${mib(first.rss)} -> ${mib(last.rss)} MiB, slope ${rssSlope.toFixed(2)} MiB/h ` +
        `(anonymous ${anonSlope.toFixed(2)} MiB/h; target <= 1 MiB/h) ${rssSlope <= 1 ? 'OK' : 'OVER'}`,
    );
    console.log(
      `  heap used after full GC ${mib(h0.heapUsed)} -> ${mib(h1.heapUsed)} MiB, ` +
        `slope ${heapSlope.toFixed(2)} MiB/h; ` +
        `external ${mib(h0.external)} -> ${mib(h1.external)} MiB (${externalSlope.toFixed(2)} MiB/h), ` +
        `arrayBuffers ${mib(h0.arrayBuffers)} -> ${mib(h1.arrayBuffers)} MiB`,
    );
    console.log(
      '  RSS not explained by the JS heap (RSS - heapTotal - external): ' +
        `${mib(h0.rss - h0.heapTotal - h0.external)} -> ` +
        `${mib(h1.rss - h1.heapTotal - h1.external)} MiB`,
    );
    console.log(
      `  CPU ${cpu.toFixed(2)} % of one core; fds ${first.fds} -> ${last.fds} (${fdSlope.toFixed(1)}/h); ` +
        `threads ${first.threads} -> ${last.threads}`,
    );
    const trip = (f: ReturnType<RoundTrips['figures']>, lost: number) =>
      `p50 ${ms(f.p50)} ms, p95 ${ms(f.p95)} ms, p99 ${ms(f.p99)} ms, max ${ms(f.max)} ms (${f.n}, lost ${lost})`;
    console.log(`  broker-only echo (two hops): ${trip(e, echoes.lost)}`);
    console.log(`  agent ping (two hops):       ${trip(p, pings.lost)}`);
    const ratio = (key: 'p50' | 'p95' | 'p99') => (p[key] / e[key]).toFixed(2);
    console.log(`  ratio ping/echo: p50 ${ratio('p50')}, p95 ${ratio('p95')}, p99 ${ratio('p99')}`);
    const ps = pings.figures(half);
    const late = `p50 ${ms(ps.p50)} ms, p99 ${ms(ps.p99)} ms`;
    console.log(`  ping in the second half: ${late} (a growing queue would show here)`);
    console.log(
      `  state: p50 ${ms(st.p50)} ms, p99 ${ms(st.p99)} ms (${st.n}, lost ${stateTrips.lost}); ` +
        `largest answer ${(stateLargest / 1024).toFixed(1)} KiB, ${mib(stateBytes)} MiB in all`,
    );
    const notOk = [pings, stateTrips, commands].flatMap((t) => [...t.answeredNotOk]).map(([c, k]) => `${c} x${k}`);
    console.log(
      `  lidar replugs ${replugs}; container commands ${commands.samples.length} answered of ${commands.sent} ` +
        `(lost ${commands.lost}); not ok: ${notOk.join(', ') || 'none'}`,
    );
    const link = ['eventsBuffered', 'eventsDropped', 'reconnects']
      .map((k) => `${k} ${String(linkStats[k])}`)
      .join(', ');
    console.log(`  agent's MQTT link at the end: ${link}`);
    console.log(
      `  events: ${[...events]
        .sort((x, y) => y[1] - x[1])
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    const perHour = ((logBytes / 1024 / minutes) * 60).toFixed(0);
    console.log(`  agent log: ${logLines} lines, ${(logBytes / 1024).toFixed(0)} KiB (${perHour} KiB/h)`);
    const tail = readFileSync(logFile, 'utf8').split('\n').filter(Boolean).slice(-5);
    console.log(`  last log lines:\n${tail.map((l) => `    ${l.slice(0, 300)}`).join('\n')}`);

    if (DIFF_MINUTES > 0 && end === t0 + MINUTES * 60_000) {
      const before: HeapSummary = await session.heapSummary();
      const replugsBefore = replugs;
      const pingsBefore = pings.sent;
      await sleep(DIFF_MINUTES * 60_000);
      agentAlive();
      const after = await session.heapSummary();
      console.log(
        `heap snapshots ${DIFF_MINUTES} min apart after the window, load on (${replugs - replugsBefore} replugs, ` +
          `${pings.sent - pingsBefore} pings): ` +
          `${mib(totalSize(before))} -> ${mib(totalSize(after))} MiB of live objects; ` +
          'top growing constructors:',
      );
      for (const line of formatGrowth(heapGrowth(before, after))) console.log(line);
    }
  } finally {
    for (const timer of timers) clearInterval(timer);
    session?.close();
    for (const probe of probes) await probe.close().catch(() => undefined);
    for (const child of children) child.kill('SIGKILL');
    await sim?.stop();
    await stopRig(rig);
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
