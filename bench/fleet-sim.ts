/**
 * Fleet scale (issue 14.3): N simulated robots, each sending exactly what the agent sends (its
 * own MqttLink, StatePublisher and EventPublisher over a realistic X3 state, see
 * fleet-sim-robot.ts), against the rig's Debian mosquitto configured as deploy/broker/fleet.conf
 * (queue limits raised, TCP_NODELAY). Prints figures, never pass/fail:
 *   - connect: the ramp (FLEET_RAMP robots a second) until every robot connected, and until a
 *     dashboard subscribed from the start holds every robot's summary and availability;
 *   - broker CPU and RSS (from /proc) during the ramp and over FLEET_SAMPLE_S s of steady state
 *     (heartbeats, the odd replug), with the simulator's own CPU (the load on the machine);
 *   - a new subscriber: a plain MQTT.js one (all summaries and availabilities), and `robot-fleet
 *     list --json` (wall time, which includes its 500 ms of quiet that ends the list);
 *   - a change on one robot (lidar unplugged / plugged back) until `robot-fleet watch` prints
 *     the event and a dashboard has the new summary (the agent gathers changes for 250 ms).
 *
 *   npm run build && FLEET_N=2000 node build/bench/fleet-sim.js          (root: raises its fd limit)
 *   env: FLEET_N (2000), FLEET_RAMP (1000/s), FLEET_WORKERS (1 per 5,000 robots), FLEET_HEARTBEAT (60 s),
 *        FLEET_REPLUGS (per robot per hour, 1), FLEET_SAMPLE_S (60), FLEET_CHANGES (6)
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { STATE_SECTIONS } from '../agent/mqtt/state-publisher.js';
import { packageRoot } from '../agent/core/package-root.js';
import { summarise } from '../agent/mqtt/summary.js';
import type { AgentState } from '../agent/state/types.js';
import { startMosquitto } from '../test/rig/mosquitto.js';
import { median, runBench } from './bench-kit.js';
import { simRobotId, type SimFleetOptions } from './fleet-sim-fleet.js';
import { FleetObserver } from './fleet-sim-observer.js';
import { simState } from './fleet-sim-robot.js';
import type { WorkerReport, WorkerRequest } from './fleet-sim-worker.js';
import { sampleProcesses } from './process-sampler.js';

const N = Number(process.env.FLEET_N ?? 2000);
const RAMP = Number(process.env.FLEET_RAMP ?? 1000);
const WORKERS = Number(process.env.FLEET_WORKERS ?? Math.max(1, Math.ceil(N / 5000)));
const HEARTBEAT_S = Number(process.env.FLEET_HEARTBEAT ?? 60);
const REPLUGS = Number(process.env.FLEET_REPLUGS ?? 1);
// One heartbeat period: every robot says it is here once in the window.
const SAMPLE_S = Number(process.env.FLEET_SAMPLE_S ?? 60);
const CHANGES = Number(process.env.FLEET_CHANGES ?? 6);
const BASE = 'fleet';
const CLK_TCK = 100;

/** A worker process running one slice of the fleet. */
class Worker {
  private readonly waiting: Array<{ type: WorkerReport['type']; resolve: (r: WorkerReport) => void }> = [];
  readonly child: ChildProcess;

  constructor(options: Omit<SimFleetOptions, 'logger'>) {
    const entry = join(packageRoot(), 'build/bench/fleet-sim-worker.js');
    this.child = fork(entry, [JSON.stringify(options)], { stdio: 'inherit' });
    this.child.on('message', (report: WorkerReport) => {
      if (report.type === 'failed') console.error(`a simulator worker failed: ${report.message}`);
      const i = this.waiting.findIndex((w) => w.type === report.type);
      if (i >= 0) this.waiting.splice(i, 1)[0]!.resolve(report);
    });
  }

  ask<T extends WorkerReport['type']>(request: WorkerRequest, answer: T): Promise<Extract<WorkerReport, { type: T }>> {
    return new Promise((resolve) => {
      this.waiting.push({ type: answer, resolve: resolve as (r: WorkerReport) => void });
      this.child.send(request);
    });
  }
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** A process's CPU since ticks were read, ms ago, as a percentage of one core. */
function cpuShare(pid: number, ticks: number, ms: number): string {
  return (((cpuTicks(pid) - ticks) / CLK_TCK / (ms / 1000)) * 100).toFixed(0);
}

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : 0;
}

/** The mosquitto started with this configuration file (the rig does not hand out its pid). */
function brokerPid(configFile: string): number {
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline[0]?.endsWith('mosquitto') && cmdline.includes(configFile)) return Number(entry);
    } catch {
      // Gone since the listing.
    }
  }
  throw new Error(`no mosquitto running with ${configFile}`);
}

/** What a list --json printed: how many robots, or how far it got when its output was cut (issue 14.4). */
function listRows(text: string, n: number): string {
  try {
    const parsed = JSON.parse(text) as unknown;
    // An array of rows today; an object with its rows once list grows totals.
    const rows = (Array.isArray(parsed) ? parsed : ((parsed as { robots?: unknown[] }).robots ?? [])) as Array<{
      online: boolean | null;
      state: unknown;
    }>;
    const full = rows.filter((r) => r.online === true && r.state).length;
    return `${rows.length} of ${n} robots (${full} online with a summary), ${text.length} characters`;
  } catch (err) {
    const rows = text.match(/"online": /g)?.length ?? 0;
    return `not JSON (${(err as Error).message}): cut at ${text.length} characters, ${rows} robots in it`;
  }
}

/** robot-fleet as an operator runs it; lines are timed as they arrive (stdout to a pipe unless toFile). */
function robotFleet(url: string, args: string[], toFile?: string) {
  const fd = toFile === undefined ? undefined : openSync(toFile, 'w');
  const cli = join(packageRoot(), 'build/agent/fleet/main.js');
  const child = spawn(process.execPath, [cli, '--broker', url, '--base', BASE, ...args], {
    stdio: ['ignore', fd ?? 'pipe', 'pipe'],
  });
  if (fd !== undefined) closeSync(fd);
  let out = '';
  let err = '';
  const lines: Array<{ line: string; at: number }> = [];
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const at = Date.now();
    out += chunk.toString();
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) lines.push({ line, at });
  });
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const code = new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
  return { child, code, lines, stdout: () => out, stderr: () => err };
}

async function until<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main(): Promise<void> {
  // Both ends hold a socket per robot; the broker, started below, inherits the raised limit.
  const nofile = raiseFileLimit();
  if (nofile < N + 1024) {
    console.log(`warning: the open files limit (${nofile}) is below ${N + 1024}: raise it (ulimit -n) first`);
  }
  const dir = mkdtempSync('/tmp/rfa-fleetsim-');
  const broker = await startMosquitto(join(dir, 'mqtt'), {
    // As deploy/broker/fleet.conf: a dashboard is sent a few retained messages per robot at once.
    extraConfig: ['max_queued_messages 100000', 'max_queued_bytes 268435456', 'max_packet_size 1048576'],
  });
  const workers: Worker[] = [];
  try {
    const pid = brokerPid(join(dir, 'mqtt', 'mosquitto.conf'));
    const retained = retainedBytes(simState(simRobotId(0), 0));
    console.log(
      `fleet simulator: ${N} robots, ramp ${RAMP}/s, ${WORKERS} worker process(es), ` +
        `heartbeat ${HEARTBEAT_S} s, ` +
        `${REPLUGS} replug/robot/h; mosquitto ${mosquittoVersion()} pid ${pid}, open files limit ${nofile}`,
    );
    console.log(
      `machine: ${readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? '?'} cores, ` +
        `load average before ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}`,
    );
    console.log(
      `retained per robot (a typical one): summary ${retained.summary} B, availability, ` +
        `${STATE_SECTIONS.length} sections ` +
        `${retained.sections} B (images ${retained.images} B)`,
    );

    // Robots changed by the bench itself never replug by chance.
    const changed = Array.from({ length: CHANGES }, (_, k) => simRobotId(Math.floor(((k + 0.5) * N) / CHANGES)));
    const slice = Math.ceil(N / WORKERS);
    for (let w = 0; w < WORKERS; w += 1) {
      const first = w * slice;
      workers.push(
        new Worker({
          url: broker.url,
          baseTopic: BASE,
          first,
          count: Math.max(0, Math.min(slice, N - first)),
          rampPerSecond: RAMP / WORKERS,
          heartbeatMs: HEARTBEAT_S * 1000,
          replugsPerHour: REPLUGS,
          quiet: changed,
        }),
      );
    }
    const workerOf = (id: string) => workers[Math.floor(Number(id.slice(4)) / slice)]!;

    // 1. The ramp.
    const dashboard = await FleetObserver.connect(broker.url, BASE);
    const ticks0 = cpuTicks(pid);
    const t0 = Date.now();
    const connects = await Promise.all(workers.map((w) => w.ask({ type: 'start' }, 'connected')));
    const connectedMs = Date.now() - t0;
    await dashboard.waitForComplete(N, 120_000);
    const settledMs = Date.now() - t0;
    const rampCpu = ((cpuTicks(pid) - ticks0) / CLK_TCK / (settledMs / 1000)) * 100;
    const rampRss = rssMiB(pid);
    console.log(
      `\nconnect: every robot connected in ${(connectedMs / 1000).toFixed(1)} s ` +
        `(workers: ${connects.map((c) => (c.ms / 1000).toFixed(1)).join(', ')} s); ` +
        `a dashboard subscribed from the start ` +
        `held every summary and availability after ${(settledMs / 1000).toFixed(1)} s`,
    );
    console.log(
      `broker during the ramp: CPU ${rampCpu.toFixed(1)} % of a core, ` + `RSS ${rampRss.toFixed(1)} MiB after it`,
    );

    // 2. Steady state: heartbeats and the odd replug.
    const pids: Record<string, number> = { broker: pid };
    workers.forEach((w, i) => (pids[`simulator ${i + 1}`] = w.child.pid!));
    const steady = await sampleProcesses(pids, SAMPLE_S);
    for (const [name, f] of Object.entries(steady)) {
      console.log(
        `steady ${SAMPLE_S} s, ${name}: CPU ${f.cpuPercent.toFixed(1)} % of a core, ` +
          `RSS mean ${(f.rssMean / 2 ** 20).toFixed(1)} MiB, ` +
          `max ${(f.rssMax / 2 ** 20).toFixed(1)} MiB`,
      );
    }
    console.log(
      `load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );

    // 3. A new subscriber: QoS 1 as robot-fleet subscribes (a PUBACK per message), QoS 0, and
    // mosquitto_sub (C) beside MQTT.js, with the broker's CPU over each delivery.
    for (const qos of [1, 0] as const) {
      const ticks = cpuTicks(pid);
      const t1 = Date.now();
      const fresh = await FleetObserver.connect(broker.url, BASE, qos);
      await fresh.waitForComplete(N, 60_000).catch((err: Error) => console.log(`new subscriber: ${err.message}`));
      const freshMs = Date.now() - t1;
      console.log(
        `${qos === 1 ? '\n' : ''}new MQTT.js subscriber (QoS ${qos}): ` +
          `${fresh.complete} of ${N} robots (summary and ` +
          `availability) in ${freshMs} ms (connect and subscribe included), ${fresh.unreadable} unreadable; ` +
          `broker CPU meanwhile ${cpuShare(pid, ticks, freshMs)} % of a core`,
      );
      await fresh.close();
    }
    for (const qos of [1, 0]) {
      const ticks = cpuTicks(pid);
      const t1 = Date.now();
      const topics = ['-t', `${BASE}/+/state`, '-t', `${BASE}/+/availability`];
      const args = ['-h', '127.0.0.1', '-p', String(broker.port), '-q', String(qos), ...topics];
      args.push('-C', String(2 * N), '-W', '60');
      const sub = spawn('mosquitto_sub', args, { stdio: ['ignore', 'pipe', 'ignore'] });
      let lines = 0;
      sub.stdout.on('data', (chunk: Buffer) => (lines += chunk.toString().split('\n').length - 1));
      const code = await new Promise<number>((resolve) => sub.on('exit', (c) => resolve(c ?? -1)));
      const subMs = Date.now() - t1;
      console.log(
        `mosquitto_sub (QoS ${qos}): ${lines} of ${2 * N} messages in ${subMs} ms, exit ${code}; ` +
          `broker CPU meanwhile ${cpuShare(pid, ticks, subMs)} % of a core`,
      );
    }
    // To a file (Node writes files synchronously: all of it) and to a pipe (as `list --json | jq`).
    for (const to of ['file', 'pipe'] as const) {
      const file = join(dir, 'list.json');
      const t2 = Date.now();
      const list = robotFleet(broker.url, ['--timeout', '60', 'list', '--json'], to === 'file' ? file : undefined);
      const code = await list.code;
      const ms = Date.now() - t2;
      const text = to === 'file' ? readFileSync(file, 'utf8') : list.stdout();
      console.log(
        `robot-fleet list --json > ${to}: exit ${code} in ${ms} ms ` +
          `(node start and its 500 ms of quiet included), ` +
          `${listRows(text, N)}${list.stderr() ? `; stderr ${list.stderr().slice(0, 200)}` : ''}`,
      );
    }

    // 4. A change on one robot, seen by robot-fleet watch (the event) and a dashboard (the summary).
    const watch = robotFleet(broker.url, ['watch']);
    try {
      // Subscribed once a marker event published beside the fleet shows in its output (its start is not timed).
      const marker = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
      try {
        const payload = () => JSON.stringify({ type: 'bench.marker', ts: new Date().toISOString() });
        for (let subscribed = false; !subscribed;) {
          await marker.publishAsync(`${BASE}/bench-marker/events`, payload(), { qos: 1 });
          await new Promise((r) => setTimeout(r, 200));
          subscribed = watch.lines.some((l) => / bench-marker bench\.marker/.test(l.line));
          if (!subscribed && (await Promise.race([watch.code, Promise.resolve(undefined)])) !== undefined) {
            throw new Error(`robot-fleet watch ended: ${watch.stderr().slice(0, 300)}`);
          }
        }
      } finally {
        await marker.endAsync();
      }
      const toWatch: number[] = [];
      const toSummary: number[] = [];
      for (const id of changed) {
        for (const present of [false, true]) {
          const seenBefore = watch.lines.length;
          const summaryShows = dashboard.waitFor(
            () => dashboard.robots.get(id)?.summary?.devices.lidar.present === present,
            10_000,
            () => `${id}'s summary`,
          );
          const { at } = await workerOf(id).ask({ type: 'change', id, present }, 'changed');
          const pattern = new RegExp(` ${id} device\\.${present ? 'attached' : 'detached'} `);
          const shown = () => watch.lines.slice(seenBefore).find((l) => pattern.test(l.line));
          const line = await until(shown, 10_000, `${id} in watch`);
          const summaryAt = await summaryShows;
          toWatch.push(line.at - at);
          toSummary.push(summaryAt - at);
        }
      }
      const fmt = (xs: number[]) => `median ${median(xs)} ms, max ${Math.max(...xs)} ms (${xs.length} changes)`;
      console.log(`\nchange on one robot -> robot-fleet watch prints the event: ${fmt(toWatch)}`);
      console.log(
        `change on one robot -> a dashboard has the new summary: ${fmt(toSummary)} ` +
          `(250 ms of it is the agent's coalescing)`,
      );
    } finally {
      watch.child.kill('SIGTERM');
      await watch.code;
    }

    // 5. Every robot says it leaves (offline, retained).
    const t3 = Date.now();
    const stops = await Promise.all(workers.map((w) => w.ask({ type: 'stop' }, 'stopped')));
    // Polled: a check of every robot on each of N messages would cost the observer N squared.
    const offline = await until(
      () => ([...dashboard.robots.values()].every((r) => r.availability === 'offline') ? true : undefined),
      60_000,
      'every robot offline',
    ).then(
      () => 'every robot offline',
      (err: Error) => err.message,
    );
    const first = stops.find((s) => s.firstWarning)?.firstWarning;
    console.log(
      `\nstop: ${offline} after ${Date.now() - t3} ms; simulator warnings: ` +
        `${stops.reduce((a, s) => a + s.warnings, 0)}${first ? ` (first: ${first})` : ''}`,
    );
    await dashboard.close();
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The soft open-files limit raised to the hard one (what an unprivileged raise can do); the new limit. */
function raiseFileLimit(): number {
  const line = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  const hard = line?.[2] ?? '1024';
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${hard}:${hard}`], { stdio: 'ignore' });
  } catch {
    // Left as it was: the figure printed says so.
  }
  const now = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? '1024';
  return now === 'unlimited' ? Infinity : Number(now);
}

/** Payload bytes a robot keeps retained on the broker, as StatePublisher sends them. */
function retainedBytes(state: AgentState): { summary: number; sections: number; images: number } {
  const now = new Date().toISOString();
  const size = (value: unknown) => Buffer.byteLength(JSON.stringify(value));
  return {
    summary: size(summarise(state, { changed: now, seen: now })),
    sections: STATE_SECTIONS.reduce((sum, section) => sum + size(state[section]), 0),
    images: size(state.images),
  };
}

function mosquittoVersion(): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'mosquitto'], { encoding: 'utf8' });
  } catch {
    return '(version unknown)';
  }
}

runBench(main);
