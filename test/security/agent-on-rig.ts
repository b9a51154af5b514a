import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { uniqueRobotId } from '../helpers/agent-harness.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import type { Rig } from '../rig/index.js';

/** Resident set size of a process, bytes. */
export function rssOf(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

/** The real CLI as systemd runs it, on the rig's broker and engine: its RSS is measurable. */
export async function spawnOnRig(rig: Rig, robot: string, more: Record<string, unknown> = {}): Promise<AgentProcess> {
  const dir = tempDir('rfa-fuzz-');
  const config = writeYaml(dir, 'config.yaml', {
    robot: { id: robot },
    mqtt: { url: rig.mqtt.url, protocolVersion: 5 },
    docker: { socketPath: rig.docker.socketPath },
    state: { dir: join(dir, 'state') },
    log: { level: 'warn' },
    ...more,
  });
  return spawnAgent(['run', '--config', config]);
}

export interface SpawnedAgent {
  agent: AgentProcess;
  probe: MqttProbe;
  /** The robot's base topic. */
  base: string;
  pid: number;
}

/**
 * The set-up of the tests that measure the real CLI: a probe (MQTT 5) on the robot's responses
 * and availability, the agent spawned on the rig, online and answering a first ping; both are
 * stopped after each test. Call it once inside a `describe`.
 */
export function useSpawnedAgent(): {
  start(rig: Rig, prefix: string, config?: Record<string, unknown>): Promise<SpawnedAgent>;
} {
  let agent: AgentProcess | undefined;
  let probe: MqttProbe | undefined;
  afterEach(async () => {
    await probe?.close();
    agent?.kill('SIGTERM');
    await agent?.exited().catch(() => agent?.kill('SIGKILL'));
    probe = undefined;
    agent = undefined;
  });
  return {
    async start(rig, prefix, config = {}) {
      const robot = uniqueRobotId(prefix);
      const base = `fleet/${robot}`;
      probe = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
      await probe.subscribe(`${base}/response/#`, `${base}/availability`);
      agent = await spawnOnRig(rig, robot, config);
      await probe.waitForTopic(`${base}/availability`, 15_000, (m) => m.text === 'online');
      assert.equal((await probe.request(base, 'ping', { id: 'warm' })).ok, true);
      return { agent, probe, base, pid: agent.child.pid! };
    },
  };
}
