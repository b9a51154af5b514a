import type Docker from 'dockerode';
import { execInContainer } from '../docker/container-exec.js';
import { AgentError } from '../core/errors.js';

export interface VerifyOptions {
  docker: Docker;
  containerId: string;
  name: string;
  stableSeconds: number;
  healthTimeoutSeconds: number;
  probe?: string[];
  signal?: AbortSignal;
  pollMs?: number;
}

interface Inspected {
  RestartCount: number;
  State: { Status: string; ExitCode: number; StartedAt: string; Health?: { Status: string } };
  Config: { Healthcheck?: { Test?: string[] } };
}

/**
 * Whether a new container proves itself within the health timeout: healthy by its own
 * HEALTHCHECK when the image has one, else running with no restart for stableSeconds; and then
 * the config's probe command, if any, exits 0. "Running" alone proves nothing (Kanto's mistake):
 * a ROS launch that dies after ten seconds is running for nine.
 */
export async function verifyContainer(o: VerifyOptions): Promise<{ by: 'healthcheck' | 'stable'; probe: boolean }> {
  const container = o.docker.getContainer(o.containerId);
  const deadline = Date.now() + o.healthTimeoutSeconds * 1000;
  const first = (await container.inspect()) as unknown as Inspected;
  const test = first.Config.Healthcheck?.Test;
  const byHealthcheck = Array.isArray(test) && test.length > 0 && test[0] !== 'NONE';
  let probeFailure: string | undefined;
  for (;;) {
    if (o.signal?.aborted) throw new AgentError('update_aborted', `the agent stopped while ${o.name} was being verified`);
    const info = (await container.inspect()) as unknown as Inspected;
    const status = info.State.Status;
    if (status === 'exited' || status === 'dead') throw new AgentError('container_exited', `the new ${o.name} exited with code ${info.State.ExitCode}`);
    if (status === 'restarting' || info.RestartCount > first.RestartCount || info.State.StartedAt !== first.State.StartedAt) {
      throw new AgentError('container_restarted', `the new ${o.name} restarted (its process died)`);
    }
    const health = info.State.Health?.Status;
    if (byHealthcheck && health === 'unhealthy') throw new AgentError('container_unhealthy', `the new ${o.name} failed its HEALTHCHECK`);
    const proven = byHealthcheck ? health === 'healthy' : status === 'running' && Date.now() - Date.parse(info.State.StartedAt) >= o.stableSeconds * 1000;
    if (proven) {
      if (!o.probe) return { by: byHealthcheck ? 'healthcheck' : 'stable', probe: false };
      const result = await execInContainer(container, o.probe, { limit: 4096 }).catch((err: unknown) => ({ exitCode: null, stdout: '', stderr: (err as Error).message }));
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
