import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { removeDockerDir, startDockerd, type DockerRig } from './dockerd.js';
import { buildFixtures, type Fixtures } from './fixtures.js';
import { startMosquitto, type MosquittoRig } from './mosquitto.js';
import { startRegistry, type RegistryRig } from './registry.js';

export type { DockerRig, Fixtures, MosquittoRig, RegistryRig };

export interface Rig {
  dir: string;
  registry: RegistryRig;
  docker: DockerRig;
  mqtt: MosquittoRig;
  fixtures: Fixtures;
  startedInMs: number;
}

/**
 * The real parts the agent meets on a robot, private to this run: a registry (also the engine's
 * Docker Hub mirror, so robots' image names resolve), a Docker engine, a broker, and the
 * fixture images. Short paths under /tmp: unix socket paths are limited to 107 bytes.
 */
export async function startRig(): Promise<Rig> {
  const t0 = Date.now();
  const dir = mkdtempSync('/tmp/rfa-rig-');
  const stops: Array<() => Promise<void>> = [];
  try {
    const registry = await startRegistry(join(dir, 'registry'));
    stops.push(() => registry.stop());
    const docker = await startDockerd(join(dir, 'd'), { registryMirror: registry.url });
    stops.push(() => docker.stop());
    const mqtt = await startMosquitto(join(dir, 'mqtt'));
    stops.push(() => mqtt.stop());
    const fixtures = buildFixtures({ dir: join(dir, 'fixtures'), docker: docker.cliArgs, registryHost: registry.host });
    return { dir, registry, docker, mqtt, fixtures, startedInMs: Date.now() - t0 };
  } catch (err) {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    removeDockerDir(dir);
    throw err;
  }
}

export async function stopRig(rig: Rig): Promise<void> {
  await rig.mqtt.stop().catch(() => undefined);
  await rig.docker.stop().catch(() => undefined);
  await rig.registry.stop().catch(() => undefined);
  removeDockerDir(rig.dir);
  rmSync(rig.dir, { recursive: true, force: true });
}
