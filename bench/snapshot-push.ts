/**
 * Snapshot plus push: the agent's `snapshot {push: true}` beside `docker commit` + `docker push`
 * by the CLI, on the same container in the same run (each round writes 1 MiB of fresh random
 * bytes first, so both push exactly one new layer of the same size; the order alternates), and
 * bytes the agent pushed vs the snapshot layer's size. Prints figures; not part of the test suite.
 *
 *   npm run build && node build/bench/snapshot-push.js      (root: dockerd)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent } from '../test/helpers/agent-harness.js';
import { MqttProbe } from '../test/helpers/mqtt-probe.js';
import { startRig, stopRig } from '../test/rig/index.js';
import { median, runBench } from './bench-kit.js';

const ROUNDS = 5;

async function main(): Promise<void> {
  const rig = await startRig();
  const dir = mkdtempSync(join(tmpdir(), 'rfa-bench-snap-'));
  const cli = (...args: string[]) =>
    execFileSync('docker', [...rig.docker.cliArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      .toString()
      .trim();
  const host = rig.registry.host;
  const source = `${host}/yahboomtechnology/ros-foxy:3.3.9`;
  try {
    const subject = await startAgent({
      docker: { socketPath: rig.docker.socketPath },
      images: { allow: [`${host}/**`], pushAllow: [`${host}/**`] },
      devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
      snapshots: { repository: `${host}/bench/agent` },
      containers: { ros: { image: source, stopTimeout: 1 } },
      log: { level: 'warn' },
    });
    for (let i = 0; i < 600 && subject.agent.store.get().containers[0]?.state !== 'running'; i += 1)
      await new Promise((r) => setTimeout(r, 100));
    const probe = await MqttProbe.connect(`mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`, {
      protocolVersion: 4,
    });
    await probe.subscribe(`${subject.base}/response/#`);
    const freshBytes = () =>
      cli('exec', 'ros', 'sh', '-c', 'dd if=/dev/urandom of=/root/blob bs=1024 count=1024 2>/dev/null');
    const agentMs: number[] = [];
    const cliMs: number[] = [];
    const pushed: Array<[number, number]> = [];
    const byAgent = async (round: number) => {
      freshBytes();
      const t0 = process.hrtime.bigint();
      // As a dashboard asks: over MQTT, answered when the push is done.
      const response = await probe.request(
        subject.base,
        'snapshot',
        { id: `bench-${round}`, container: 'ros', tag: `a${round}`, push: true },
        120_000,
      );
      agentMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (!response.ok) throw new Error(JSON.stringify(response));
      const r = response.result as { pushed: { bytesPushed: number }; layerBytes: number };
      pushed.push([r.pushed.bytesPushed, r.layerBytes]);
    };
    const byCli = (round: number) => {
      freshBytes();
      const ref = `${host}/bench/cli:c${round}`;
      const t0 = process.hrtime.bigint();
      cli('commit', '--pause=false', 'ros', ref);
      cli('push', ref);
      cliMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    for (let round = 0; round < ROUNDS; round += 1) {
      if (round % 2 === 0) {
        await byAgent(round);
        byCli(round);
      } else {
        byCli(round);
        await byAgent(round);
      }
    }
    await probe.close();
    await subject.stop();
    const a = median(agentMs);
    const c = median(cliMs);
    console.log(
      `snapshot + push of a 1 MiB change, median of ${ROUNDS}: agent ${a.toFixed(0)} ms, docker commit + docker push ${c.toFixed(0)} ms, ratio ${(a / c).toFixed(2)} (target <= 1.1)`,
    );
    console.log(
      `bytes pushed vs the snapshot layer: ${pushed.map(([p, l]) => `${p}/${l}`).join(', ')} (compressed random data: about equal; the base layers never went up)`,
    );
  } finally {
    await stopRig(rig);
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
