import { join } from 'node:path';
import { buildAgent, type Agent } from '../../agent/app.js';
import { loadConfig } from '../../agent/config/load-config.js';
import type { LoadedConfig } from '../../agent/config/types.js';
import { createLogger } from '../../agent/core/logger.js';
import { embeddedBrokerLogins } from './mqtt-probe.js';
import { tempDir, writeYaml } from './temp.js';

export interface AgentUnderTest {
  agent: Agent;
  loaded: LoadedConfig;
  /** Every log line the agent wrote, parsed. */
  logs: Array<Record<string, unknown>>;
  base: string;
  stop(): Promise<void>;
}

let counter = 0;

/** A unique robot id per test, so retained topics of one test never leak into another. */
export function uniqueRobotId(prefix = 'robot'): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 6)}`;
}

/**
 * Builds the real agent in this process from a config document (merged over test-friendly
 * defaults: private state dir, no Docker, fast reconnects) and starts it.
 */
export async function startAgent(doc: Record<string, any> = {}, env: NodeJS.ProcessEnv = {}): Promise<AgentUnderTest> {
  const dir = tempDir('rfa-agent-');
  const config = {
    ...doc,
    robot: { id: uniqueRobotId(), ...(doc.robot ?? {}) },
    state: { dir: join(dir, 'state'), ...(doc.state ?? {}) },
    docker: { socketPath: join(dir, 'no-docker.sock'), ...(doc.docker ?? {}) },
    mqtt: {
      reconnect: { initial: 0.2, max: 1 },
      ...(doc.mqtt ?? {}),
      embedded: { port: 0, ...(doc.mqtt?.embedded ?? {}) },
    },
    log: { level: 'debug', ...(doc.log ?? {}) },
  };
  const loaded = loadConfig({ file: writeYaml(dir, 'config.yaml', config), env });
  const logs: Array<Record<string, unknown>> = [];
  const secrets = [
    loaded.secrets.mqttPassword,
    loaded.secrets.embeddedPassword,
    ...Object.values(loaded.secrets.registryPasswords ?? {}),
    ...Object.values(loaded.secrets.dockerConfigAuths ?? {}).map((a) => a.password),
  ].filter((s): s is string => s !== undefined);
  const logger = createLogger({
    level: 'debug',
    secrets,
    write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>),
  });
  const agent = buildAgent({ loaded, logger, version: 'test' });
  await agent.start();
  const broker = agent.embeddedBroker;
  if (broker) embeddedBrokerLogins.set(String(broker.port), broker.credentials);
  let stopped = false;
  return {
    agent,
    loaded,
    logs,
    base: `${loaded.config.mqtt.baseTopic}/${loaded.config.robot.id}`,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (broker) embeddedBrokerLogins.delete(String(broker.port));
      await agent.stop(4000);
    },
  };
}
