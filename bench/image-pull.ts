/**
 * An update between two tags that share their base layers, as a robot does it:
 *   - bytes the registry actually served vs the plan's bytesToDownload vs the sum of the new
 *     tag's layers that the old one lacks (the three must be equal);
 *   - the agent's pull time vs `docker pull` of the same image on the same engine, alternated,
 *     medians of several runs (target: ratio at most 1.05).
 * The rig registry sits behind a counting proxy. Prints figures; not part of the test suite.
 *
 *   npm run bench    (or: npx tsc -p tsconfig.json && node build/bench/image-pull.js)
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent } from '../test/helpers/agent-harness.js';
import { FaultyRegistry } from '../test/helpers/faulty-registry.js';
import { MqttProbe } from '../test/helpers/mqtt-probe.js';
import { startRig, stopRig } from '../test/rig/index.js';
import { runBench } from './bench-kit.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const BIG_MB = Number(process.env.BENCH_LAYER_MB ?? 64);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const rig = await startRig();
  const dir = mkdtempSync(join(tmpdir(), 'rfa-bench-pull-'));
  const proxy = await FaultyRegistry.start(rig.registry.url, 'none');
  try {
    // Async: the counting proxy answers dockerd from this very process.
    const run = promisify(execFile);
    const docker = async (...args: string[]) =>
      (await run('docker', [...rig.docker.cliArgs, ...args], { maxBuffer: 64 << 20 })).stdout.trim();
    // A new tag on top of 3.3.9 with one big layer: the update a robot downloads.
    const repo = `${rig.registry.host}/yahboomtechnology/ros-foxy`;
    await docker('pull', `${repo}:3.3.9`);
    writeFileSync(join(dir, 'update.bin'), randomBytes(BIG_MB * 1024 * 1024));
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${repo}:3.3.9\nCOPY update.bin /opt/ros/update.bin\n`);
    await docker('build', '-q', '--network', 'none', '-t', `${repo}:bench-update`, dir);
    await docker('push', `${repo}:bench-update`);
    await docker('image', 'rm', `${repo}:bench-update`);

    const old = `${proxy.host}/yahboomtechnology/ros-foxy:3.3.9`;
    const update = `${proxy.host}/yahboomtechnology/ros-foxy:bench-update`;
    await docker('pull', old);
    const subject = await startAgent({
      docker: { socketPath: rig.docker.socketPath },
      images: { allow: [`${proxy.host}/**`] },
      log: { level: 'warn' },
    });
    const probe = await MqttProbe.connect(`mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`, {
      protocolVersion: 4,
    });
    await probe.subscribe(`${subject.base}/response/#`);
    try {
      const plan = (await probe.request(subject.base, 'plan', { id: 'plan', image: update }, 30_000)).result as {
        bytesToDownload: number;
        missing: Array<{ size: number }>;
      };
      const manifest = (await (
        await fetch(`${rig.registry.url}/v2/yahboomtechnology/ros-foxy/manifests/bench-update`, {
          headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
        })
      ).json()) as { layers: Array<{ digest: string; size: number }> };
      const oldManifest = (await (
        await fetch(`${rig.registry.url}/v2/yahboomtechnology/ros-foxy/manifests/3.3.9`, {
          headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
        })
      ).json()) as { layers: Array<{ digest: string }> };
      const oldDigests = new Set(oldManifest.layers.map((l) => l.digest));
      const newLayers = manifest.layers.filter((l) => !oldDigests.has(l.digest));
      const sumNew = newLayers.reduce((s, l) => s + l.size, 0);

      proxy.served.clear();
      const first = await probe.request(subject.base, 'pull', { id: 'pull-0', image: update }, 120_000);
      if (!first.ok) throw new Error(JSON.stringify(first));
      const servedLayers = newLayers.reduce((s, l) => s + (proxy.served.get(l.digest) ?? 0), 0);
      const servedAll = [...proxy.served.values()].reduce((a, b) => a + b, 0);
      console.log(
        `update ${BIG_MB} MiB layer on top of 3.3.9 (shared base): plan bytesToDownload ${plan.bytesToDownload}, sum of new layers ${sumNew}, layer bytes served ${servedLayers} -> ${plan.bytesToDownload === sumNew && sumNew === servedLayers ? 'EQUAL' : 'DIFFERENT'}; all blob bytes served incl. image config ${servedAll}`,
      );

      const agentTimes: number[] = [];
      const dockerTimes: number[] = [];
      for (let i = 0; i < RUNS; i += 1) {
        await docker('image', 'rm', update);
        let t0 = process.hrtime.bigint();
        await docker('pull', update);
        dockerTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
        await docker('image', 'rm', update);
        t0 = process.hrtime.bigint();
        const r = await probe.request(subject.base, 'pull', { id: `pull-${i + 1}`, image: update }, 120_000);
        if (!r.ok) throw new Error(JSON.stringify(r));
        agentTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      const ratio = median(agentTimes) / median(dockerTimes);
      console.log(
        `pull time over ${RUNS} alternated runs: docker pull median ${median(dockerTimes).toFixed(0)} ms, agent pull (plan + pull, asked over MQTT) median ${median(agentTimes).toFixed(0)} ms, ratio ${ratio.toFixed(3)} (target <= 1.05) ${ratio <= 1.05 ? 'OK' : 'OVER'}`,
      );
    } finally {
      await probe.close();
      await subject.stop();
    }
  } finally {
    await proxy.stop();
    rmSync(dir, { recursive: true, force: true });
    await stopRig(rig);
  }
}

runBench(main);
