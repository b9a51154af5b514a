/**
 * Update downtime, side by side in the same run, ROUNDS rounds of each, interleaved so the
 * machine's load is shared alike. Downtime is read from the engine's own event stream: the
 * replaced container's `die` (by its id) to the next `start`.
 *  - baseline: the engine's own stop and start of the same container (the agent's `ros`, the
 *    agent stopped), through the Engine API as the agent calls it, back to back (the target:
 *    the agent's downtime at most this), and the same with the docker CLI for reference;
 *  - agent: the agent updating `ros` from 3.3.9 to 3.4.0 (pulled while the old one runs);
 *  - naive: `docker stop; docker rm; docker run` of the new image, already here.
 * It prints medians and p90s, the ratio agent/baseline, and what each part of the agent's window
 * cost (update.verified's downtimeParts: in the window the stop and the start; created ahead
 * under a temporary name and renamed after, so create and rename are outside it, and printed as
 * such). Prints figures; not part of the test suite.
 *
 *   npm run build && node build/bench/update-downtime.js      (root: dockerd; ROUNDS=15)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { DockerodeEngine } from '../agent/docker/dockerode-engine.js';
import type { AgentEvent } from '../agent/state/event-bus.js';
import { startAgent } from '../test/helpers/agent-harness.js';
import { MqttProbe } from '../test/helpers/mqtt-probe.js';
import { startRig, stopRig, type Rig } from '../test/rig/index.js';
import { median, percentile, pollFor, runBench } from './bench-kit.js';

const ROUNDS = Number(process.env.ROUNDS ?? 15);

/**
 * Milliseconds from the `die` of the container `dying` (its id) to the next container `start`,
 * by the engine's clock. By id: a window read by time alone can catch another container's die
 * (the previous round's clean-up), which is not this downtime.
 */
function downtime(rig: Rig, since: number, until: number, dying: string): number {
  const lines = execFileSync('docker', [
    ...rig.docker.cliArgs,
    'events',
    '--since',
    String(since / 1000),
    '--until',
    String(until / 1000),
    '--filter',
    'type=container',
    '--format',
    '{{.TimeNano}} {{.Action}} {{.Actor.ID}}',
  ])
    .toString()
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .map(([t, action, id]) => ({ ms: Number(BigInt(t!) / 1_000_000n), action: action!, id: id! }));
  const died = lines.find((l) => l.action === 'die' && l.id === dying);
  const started = lines.find((l) => l.action === 'start' && died !== undefined && l.ms >= died.ms);
  if (!died || !started) throw new Error(`no die/start pair for ${dying} in ${JSON.stringify(lines)}`);
  // The engine's own view of the window, printed with each round: kill, die, stop, start.
  const around = lines.filter((l) => l.ms >= died.ms - 2000 && l.ms <= started.ms);
  lastTimeline = around.map((l) => `${l.action}@${l.ms - died.ms}`).join(' ');
  return started.ms - died.ms;
}

/** The engine events of the last window read (die at 0). */
let lastTimeline = '';

/** The id of the container named ros now. */
function rosId(cli: (...args: string[]) => string): string {
  return cli('inspect', '--format', '{{.Id}}', 'ros');
}

/** "median 123 ms, p90 150 ms [samples]" */
function figures(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  return `median ${median(samples)} ms, p90 ${percentile(sorted, 90)} ms [${samples.join(', ')}]`;
}

async function main(): Promise<void> {
  const rig = await startRig();
  const dir = mkdtempSync(join(tmpdir(), 'rfa-bench-update-'));
  const cli = (...args: string[]) =>
    execFileSync('docker', [...rig.docker.cliArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      .toString()
      .trim();
  const clean = () => {
    for (const c of cli('ps', '-aq').split('\n').filter(Boolean)) cli('rm', '-f', c);
    const tags = cli('image', 'ls', '--format', '{{.Repository}}:{{.Tag}}')
      .split('\n')
      .filter((t) => t && !t.endsWith(':<none>'));
    if (tags.length) cli('image', 'rm', '-f', ...tags);
  };
  const { v339, v340 } = rig.fixtures.images;
  const engine = new DockerodeEngine(() => new Docker({ socketPath: rig.docker.socketPath }));
  const agentMs: number[] = [];
  const baselineMs: number[] = [];
  const baselineParts: Array<Record<string, number>> = [];
  const cliBaselineMs: number[] = [];
  const naiveMs: number[] = [];
  const parts: Array<Record<string, number>> = [];
  /** The engine's events need a moment to be out of the window read next. */
  const settle = () => new Promise((r) => setTimeout(r, 1100));
  try {
    for (let round = 0; round < ROUNDS; round += 1) {
      // The agent: the old container runs while it pulls; the swap is the downtime.
      clean();
      const subject = await startAgent({
        docker: { socketPath: rig.docker.socketPath },
        registries: { 'docker.io': { mirror: rig.registry.url } },
        devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
        update: { stableSeconds: 1, lockFile: join(dir, 'no.lock') },
        containers: { ros: { image: v339, stopTimeout: 1 } },
        log: { level: 'warn' },
      });
      await pollFor(
        () => (subject.agent.store.get().containers[0]?.state === 'running' ? true : undefined),
        60_000,
        'ros running',
      );
      const t0 = Date.now() - 1000;
      await pollFor(() => (subject.agent.store.get().containers[0]?.inSync ? true : undefined), 10_000, 'in sync');
      const oldId = rosId(cli);
      const ended = new Promise<AgentEvent>((resolve) => {
        const off = subject.agent.bus.subscribe((e) => {
          if (e.type === 'update.verified' && e.downtimeParts) parts.push(e.downtimeParts as Record<string, number>);
          if (e.type === 'update.done' || e.type === 'update.rolledback' || e.type === 'update.failed') {
            off();
            resolve(e);
          }
        });
      });
      // The new image arrives as the fleet sends it: a retained desired state.
      const probe = await MqttProbe.connect(`mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`, {
        protocolVersion: 4,
      });
      await probe.client.publishAsync(
        `${subject.base}/desired`,
        JSON.stringify({ containers: { ros: { image: v340 } } }),
        { retain: true, qos: 1 },
      );
      await probe.close();
      const outcome = await ended;
      if (outcome.type !== 'update.done') throw new Error(`update ended ${JSON.stringify(outcome)}`);
      agentMs.push(downtime(rig, t0, Date.now() + 1000, oldId));
      const agentTimeline = lastTimeline;
      await subject.stop();

      // The baseline: the same container (the agent's new ros), stopped and started by the engine
      // alone, back to back through the Engine API, then with the CLI.
      await settle();
      const t1 = Date.now();
      await engine.stopContainer('ros', 1);
      const stopped = Date.now();
      await engine.startContainer('ros');
      baselineParts.push({ stopMs: stopped - t1, startMs: Date.now() - stopped });
      baselineMs.push(downtime(rig, t1, Date.now() + 1000, rosId(cli)));
      await settle();
      const t2 = Date.now();
      cli('stop', '--time', '1', 'ros');
      cli('start', 'ros');
      cliBaselineMs.push(downtime(rig, t2, Date.now() + 1000, rosId(cli)));

      // The naive script, as a person would type it (the new image already here).
      clean();
      cli('pull', v339);
      cli('pull', v340);
      cli('run', '-d', '--name', 'ros', '--stop-timeout', '1', v339);
      await new Promise((r) => setTimeout(r, 1500));
      const t3 = Date.now() - 1000;
      const naiveOld = rosId(cli);
      cli('stop', 'ros');
      cli('rm', 'ros');
      cli('run', '-d', '--name', 'ros', '--stop-timeout', '1', v340);
      naiveMs.push(downtime(rig, t3, Date.now() + 1000, naiveOld));
      console.log(
        `round ${round + 1}: agent ${agentMs.at(-1)} ms, baseline ${baselineMs.at(-1)} ms ` +
          `(cli ${cliBaselineMs.at(-1)} ms), naive ${naiveMs.at(-1)} ms, parts ${JSON.stringify(parts.at(-1))}, ` +
          `agent's window by the engine's events: ${agentTimeline}`,
      );
    }
    const a = median(agentMs);
    const b = median(baselineMs);
    console.log(`update downtime (a container died -> the next one started), ${ROUNDS} rounds of each, interleaved:`);
    console.log(`  baseline, the engine's own stop + start of the same container (API): ${figures(baselineMs)}`);
    console.log(`  the same with the docker CLI (stop; start):                         ${figures(cliBaselineMs)}`);
    console.log(`  agent update:                                                       ${figures(agentMs)}`);
    console.log(`  naive stop; rm; run (image here):                                   ${figures(naiveMs)}`);
    const sortedA = [...agentMs].sort((x, y) => x - y);
    const sortedB = [...baselineMs].sort((x, y) => x - y);
    const p90 = (percentile(sortedA, 90) / percentile(sortedB, 90)).toFixed(2);
    console.log(`  ratio agent/baseline: median ${(a / b).toFixed(2)}, p90 ${p90}`);
    // Paired by round: the machine's load drifts between rounds more than within one.
    const paired = agentMs.map((x, i) => x / baselineMs[i]!);
    const pairedSorted = [...paired].sort((x, y) => x - y);
    console.log(
      `  ratio agent/baseline paired by round: median ${median(paired).toFixed(2)}, ` +
        `p10 ${percentile(pairedSorted, 10).toFixed(2)}, p90 ${percentile(pairedSorted, 90).toFixed(2)}`,
    );
    const inWindow = ['stopMs', 'commitMs', 'renameMs', 'createMs', 'startMs'];
    const outside = ['createdBeforeMs', 'renamedAfterMs'];
    const each = (keys: string[]) =>
      keys
        .map((k) => {
          const values = parts.map((p) => p[k] ?? 0);
          const sorted = [...values].sort((x, y) => x - y);
          return `${k.replace(/Ms$/, '')} ${median(values)} ms (p90 ${percentile(sorted, 90)})`;
        })
        .join(', ');
    console.log(
      `the agent's window by part (its stop call to its start's answer, ${parts.length} runs; the stop call ` +
        `includes the wait for the old process to exit, before its die): ${each(inWindow)}`,
    );
    console.log(`outside the window: ${each(outside)}`);
    const baselineEach = ['stopMs', 'startMs']
      .map((k) => {
        const values = baselineParts.map((p) => p[k]!);
        const sorted = [...values].sort((x, y) => x - y);
        return `${k.replace(/Ms$/, '')} ${median(values)} ms (p90 ${percentile(sorted, 90)})`;
      })
      .join(', ');
    console.log(`the baseline's calls (the same, through the Engine API): ${baselineEach}`);
  } finally {
    clean();
    await stopRig(rig);
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
