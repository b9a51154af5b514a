import { statfs } from 'node:fs/promises';
import type { AgentConfig } from '../config/types.js';
import { AgentError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { DockerEngineLink } from '../docker/engine-link.js';
import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';
import { followEngineProgress } from './engine-progress.js';
import type { ImageInventory } from './image-inventory.js';
import type { ImageReference } from './image-reference.js';
import { planPull, type PullPlan } from './pull-plan.js';
import type { Endpoint, RegistryClient } from './registry-client.js';

export interface PullResult {
  image: string;
  imageId: string;
  digest: string;
  source: 'mirror' | 'origin';
  bytesDownloaded: number;
  seconds: number;
}

/**
 * Pulls images the way an unattended robot on Wi-Fi needs: the plan first (refused before a
 * byte moves when the disk cannot take it), the site mirror before the origin, progress as
 * events, no time limit while bytes move and a failure when they stop.
 */
export class ImagePuller {
  constructor(
    private readonly o: {
      engine: DockerEngineLink;
      inventory: ImageInventory;
      registry: RegistryClient;
      store: StateStore;
      bus: EventBus;
      config: AgentConfig['images'];
      logger: Logger;
    },
  ) {}

  async plan(ref: ImageReference): Promise<PullPlan> {
    const docker = this.requireEngine();
    await this.o.inventory.current();
    const manifest = await this.o.registry.manifest(ref, { os: docker.os ?? 'linux', architecture: docker.arch ?? 'amd64' });
    return planPull({
      ref,
      manifest,
      localLayers: this.o.inventory.localLayers(),
      diskFree: await freeBytes(docker.rootDir),
      diskFactor: this.o.config.diskFactor,
      diskReserve: this.o.config.diskReserve,
    });
  }

  async pull(ref: ImageReference, ctx: { requestId: string; progress: (fields: Record<string, unknown>) => void }): Promise<PullResult> {
    const started = Date.now();
    try {
      const plan = await this.plan(ref);
      if (!plan.fits) {
        throw new AgentError(
          'insufficient_disk',
          `${ref.familiar} needs ${plan.diskRequired} bytes free on Docker's disk (${plan.bytesToDownload} to download, x${this.o.config.diskFactor} for extraction, plus the ${this.o.config.diskReserve}-byte reserve); ${plan.diskFree} are free`,
          { details: { plan } },
        );
      }
      const endpoints = this.o.registry.endpoints(ref).filter((e) => plan.source === 'mirror' || e.source === 'origin');
      let used: Endpoint | undefined;
      let lastError: unknown;
      for (const endpoint of endpoints) {
        try {
          await this.pullFrom(endpoint, ref, plan, ctx);
          used = endpoint;
          break;
        } catch (err) {
          lastError = err;
          if (endpoint.source === 'origin' || (err instanceof AgentError && err.code === 'disk_full')) throw err;
          this.o.logger.warn('pull from the mirror failed; trying the origin', { image: ref.familiar, error: toErrorInfo(err) });
        }
      }
      if (!used) throw lastError;
      const docker = this.o.engine.docker;
      if (used.source === 'mirror') {
        // The image keeps its canonical name whatever it came through.
        await docker.getImage(used.pullReference).tag({ repo: ref.familiarRepository, ...(ref.tag ? { tag: ref.tag } : {}) });
        await docker.getImage(used.pullReference).remove({ noprune: true }).catch(() => undefined);
      }
      const inspect = (await docker.getImage(ref.familiar).inspect()) as { Id: string; RepoDigests?: string[] };
      // The pull's own engine events refresh the inventory; the answer need not wait for it.
      const result: PullResult = {
        image: ref.familiar,
        imageId: inspect.Id,
        digest: plan.digest,
        source: used.source,
        bytesDownloaded: plan.bytesToDownload,
        seconds: Math.round((Date.now() - started) / 100) / 10,
      };
      this.o.bus.emit('pull.done', { id: ctx.requestId, ...result });
      return result;
    } catch (err) {
      this.o.bus.emit('pull.failed', { id: ctx.requestId, image: ref.familiar, error: toErrorInfo(err) });
      throw err;
    }
  }

  private async pullFrom(endpoint: Endpoint, ref: ImageReference, plan: PullPlan, ctx: { progress: (fields: Record<string, unknown>) => void }): Promise<void> {
    const docker = this.o.engine.docker;
    const auth = endpoint.credentials ? { authconfig: { ...endpoint.credentials, serveraddress: ref.registry } } : {};
    // A lost link to the engine is the engine's failure, not the registry's: explain() says which.
    const lostEngine = (err: unknown) => this.o.engine.explain(err, `pull ${ref.familiar}`);
    let stream: NodeJS.ReadableStream;
    try {
      stream = await docker.pull(endpoint.pullReference, auth);
    } catch (err) {
      throw isTransportError(err) ? await lostEngine(err) : classifyPullError(err, ref.familiar);
    }
    let transport: unknown;
    try {
      await followEngineProgress(docker.modem, stream, {
        stallMs: this.o.config.stallTimeout * 1000,
        what: `the pull of ${ref.familiar}`,
        classify: (err) => {
          if (isTransportError(err)) transport = err;
          return classifyPullError(err, ref.familiar);
        },
        onProgress: (p) =>
          ctx.progress({ image: ref.familiar, source: endpoint.source, ...p, bytesToDownload: plan.bytesToDownload }),
      });
    } catch (err) {
      throw transport === undefined ? err : await lostEngine(transport);
    }
  }

  private requireEngine(): NonNullable<ReturnType<StateStore['get']>['docker']> {
    this.o.engine.required();
    return this.o.store.get().docker;
  }
}

async function freeBytes(path: string | undefined): Promise<number | null> {
  if (!path) return null;
  try {
    const s = await statfs(path);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

/** The socket to the engine failed (reset, closed, aborted): nothing the engine said. */
export function isTransportError(err: unknown): boolean {
  if (err instanceof AgentError) return false;
  if (typeof (err as { statusCode?: unknown })?.statusCode === 'number') return false;
  const code = (err as NodeJS.ErrnoException)?.code;
  const message = (err as Error)?.message ?? '';
  return (typeof code === 'string' && code.length > 0) || message === 'aborted' || message === 'socket hang up';
}

export function classifyPullError(err: unknown, image: string): AgentError {
  if (err instanceof AgentError) return err;
  const message = (err as Error).message ?? String(err);
  const lower = message.toLowerCase();
  if (lower.includes('no space left')) return new AgentError('disk_full', `Docker's disk filled up while pulling ${image}: ${message}`);
  if (lower.includes('manifest unknown') || lower.includes('not found') || lower.includes('does not exist')) return new AgentError('image_not_found', `no such image or tag: ${image} (${message})`);
  if (lower.includes('unauthorized') || lower.includes('authentication required') || lower.includes('denied')) return new AgentError('registry_unauthorized', `the registry refused the pull of ${image}: ${message}`);
  if (lower.includes('connection refused') || lower.includes('no such host') || lower.includes('timeout') || lower.includes('i/o timeout')) return new AgentError('registry_unreachable', `cannot reach the registry of ${image}: ${message}`);
  return new AgentError('pull_failed', `the pull of ${image} failed: ${message}`);
}
