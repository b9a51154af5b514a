/**
 * Update downtime: the agent updating `ros` from 3.3.9 to 3.4.0 (the new image not yet here)
 * beside a naive "docker stop; docker pull; docker rm; docker run" of the same images, in the
 * same run. Downtime is read from the engine's own event stream: the old container's `die` to
 * the new one's `start`. The agent pulls while the old container runs, so its downtime must not
 * contain the pull; the naive script's does. It also prints what each part of the agent's window
 * cost (update.verified's downtimeParts: stop, rename, create, start; devices are prepared before
 * the stop). Prints figures; not part of the test suite.
 *
 *   npm run build && node build/bench/update-downtime.js      (root: dockerd)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentEvent } from '../agent/state/event-bus.js';
import { startAgent } from '../test/helpers/agent-harness.js';
import { MqttProbe } from '../test/helpers/mqtt-probe.js';
import { startRig, stopRig, type Rig } from '../test/rig/index.js';
import { median, pollFor, runBench } from './bench-kit.js';

const ROUNDS = 3;

/** Milliseconds from the first container `die` to the next `start`, by the engine's clock. */
function downtime(rig: Rig, since: number, until: number): number {
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
    '{{.TimeNano}} {{.Action}}',
  ])
    .toString()
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .map(([t, action]) => ({ ms: Number(BigInt(t!) / 1_000_000n), action: action! }));
  const died = lines.find((l) => l.action === 'die');
  const started = lines.find((l) => l.action === 'start' && died !== undefined && l.ms >= died.ms);
  if (!died || !started) throw new Error(`no die/start pair in ${JSON.stringify(lines)}`);
  return started.ms - died.ms;
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
  const agentMs: number[] = [];
  const naiveMs: number[] = [];
  const parts: Array<Record<string, number>> = [];
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
      agentMs.push(downtime(rig, t0, Date.now() + 1000));
      await subject.stop();

      // The naive script, as a person would type it.
      clean();
      cli('pull', v339);
      cli('run', '-d', '--name', 'ros', '--stop-timeout', '1', v339);
      await new Promise((r) => setTimeout(r, 1500));
      const t1 = Date.now() - 1000;
      cli('stop', 'ros');
      cli('pull', v340);
      cli('rm', 'ros');
      cli('run', '-d', '--name', 'ros', '--stop-timeout', '1', v340);
      naiveMs.push(downtime(rig, t1, Date.now() + 1000));
    }
    const a = median(agentMs);
    const n = median(naiveMs);
    console.log(
      `update downtime (old container died -> new one started), median of ${ROUNDS}: agent ${a} ms [${agentMs.join(', ')}], naive stop;pull;rm;run ${n} ms [${naiveMs.join(', ')}], ratio agent/naive ${(a / n).toFixed(2)} (the agent pulls before it stops anything)`,
    );
    const keys = ['stopMs', 'commitMs', 'renameMs', 'createMs', 'startMs'];
    const each = keys.map((k) => `${k.replace(/Ms$/, '')} ${median(parts.map((p) => p[k] ?? 0))} ms`).join(', ');
    console.log(`the agent's window by part (the stop call to the start's answer, median of ${parts.length}): ${each}`);
  } finally {
    clean();
    await stopRig(rig);
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
