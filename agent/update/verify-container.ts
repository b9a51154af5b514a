import { AgentError } from '../core/errors.js';
import type { ContainerDetails, Engine } from '../docker/engine.js';

export interface VerifyOptions {
  engine: Engine;
  containerId: string;
  name: string;
  stableSeconds: number;
  healthTimeoutSeconds: number;
  probe?: string[];
  signal?: AbortSignal;
  pollMs?: number;
}

/**
 * Whether a new container proves itself within the health timeout: healthy by its own
 * HEALTHCHECK when the image has one, else running with no restart for stableSeconds; and then
 * the config's probe command, if any, exits 0. "Running" alone proves nothing (Kanto's mistake):
 * a ROS launch that dies after ten seconds is running for nine.
 */
export async function verifyContainer(o: VerifyOptions): Promise<{ by: 'healthcheck' | 'stable'; probe: boolean }> {
  const inspect = async (): Promise<ContainerDetails> => {
    const info = await o.engine.inspectContainer(o.containerId);
    if (!info) throw new AgentError('container_gone', `the new ${o.name} was removed while it was being verified`);
    return info;
  };
  const deadline = Date.now() + o.healthTimeoutSeconds * 1000;
  const first = await inspect();
  const test = first.Config.Healthcheck?.Test;
  const byHealthcheck = Array.isArray(test) && test.length > 0 && test[0] !== 'NONE';
  let probeFailure: string | undefined;
  for (;;) {
    if (o.signal?.aborted)
      throw new AgentError('update_aborted', `the agent stopped while ${o.name} was being verified`);
    const info = await inspect();
    const status = info.State.Status;
    if (status === 'exited' || status === 'dead')
      throw new AgentError('container_exited', `the new ${o.name} exited with code ${info.State.ExitCode}`);
    if (
      status === 'restarting' ||
      info.RestartCount > first.RestartCount ||
      info.State.StartedAt !== first.State.StartedAt
    ) {
      throw new AgentError('container_restarted', `the new ${o.name} restarted (its process died)`);
    }
    const health = info.State.Health?.Status;
    if (byHealthcheck && health === 'unhealthy')
      throw new AgentError('container_unhealthy', `the new ${o.name} failed its HEALTHCHECK`);
    const proven = byHealthcheck
      ? health === 'healthy'
      : status === 'running' && Date.now() - Date.parse(info.State.StartedAt) >= o.stableSeconds * 1000;
    if (proven) {
      if (!o.probe) return { by: byHealthcheck ? 'healthcheck' : 'stable', probe: false };
      const result = await o.engine
        .execInContainer(o.containerId, o.probe, { limit: 4096 })
        .catch((err: unknown) => ({ exitCode: null, stdout: '', stderr: (err as Error).message }));
      if (result.exitCode === 0) return { by: byHealthcheck ? 'healthcheck' : 'stable', probe: true };
      probeFailure = `exit ${result.exitCode}: ${(result.stderr || result.stdout).trim().slice(0, 200)}`;
    }
    if (Date.now() >= deadline) {
      throw new AgentError(
        'health_timeout',
        probeFailure
          ? `the new ${o.name}'s probe ${JSON.stringify(o.probe)} did not pass within ${o.healthTimeoutSeconds} s (${probeFailure})`
          : `the new ${o.name} was not ${byHealthcheck ? 'healthy' : `running for ${o.stableSeconds} s`} within ${o.healthTimeoutSeconds} s`,
      );
    }
    await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
  }
}
