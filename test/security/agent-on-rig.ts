import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import type { Rig } from '../rig/index.js';

/** Resident set size of a process, bytes. */
export function rssOf(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

/** The real CLI as systemd runs it, on the rig's broker and engine: its RSS is measurable. */
export async function spawnOnRig(rig: Rig, robot: string): Promise<AgentProcess> {
  const dir = tempDir('rfa-fuzz-');
  const config = writeYaml(dir, 'config.yaml', {
    robot: { id: robot },
    mqtt: { url: rig.mqtt.url, protocolVersion: 5 },
    docker: { socketPath: rig.docker.socketPath },
    state: { dir: join(dir, 'state') },
    log: { level: 'warn' },
  });
  return spawnAgent(['run', '--config', config]);
}
