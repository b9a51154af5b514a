import { statfs } from 'node:fs/promises';
import type { AgentConfig } from '../config/types.js';
import { AgentError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { EngineError, engineMessage, type Engine } from '../docker/engine.js';
import type { DockerEngineLink } from '../docker/engine-link.js';
import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';
import { followEngineProgress } from './engine-progress.js';
import type { ImageInventory } from './image-inventory.js';
import { parseImageReference, type ImageReference } from '../core/image-reference.js';
import type { ImageVerifier } from './image-verifier.js';
import { planPull, type PullPlan } from './pull-plan.js';
import type { Endpoint, RegistryClient } from './registry-client.js';
import type { CommandResult } from '../commands/command.js';

/** What `pull` answers (docs/schemas/commands/pull.json, as the command map types it). */
export type PullResult = CommandResult<'pull'>;

/**
 * Pulls images the way an unattended robot on Wi-Fi needs: the plan first (refused before a
 * byte moves when the disk cannot take it), the site mirror before the origin, progress as
 * events, no time limit while bytes move and a failure when they stop.
 */
export class ImagePuller {
  constructor(
    private readonly o: {
      /** The link: whether the engine is there, and why an operation on it failed (explain). */
      engine: Pick<DockerEngineLink, 'required' | 'explain'>;
      /** The Engine port every image operation goes through. */
      api: Engine;
      inventory: ImageInventory;
      registry: RegistryClient;
      store: StateStore;
      bus: EventBus;
      config: AgentConfig['images'];
      logger: Logger;
      /** images.verify: absent or without rules, every allowed image is pulled as before. */
      verifier?: ImageVerifier;
    },
  ) {}

  /**
   * The plan of a pull, and whether the image is verified: null when images.verify does not
   * cover it, what signed it when it does; an image that does not verify is refused here too.
   */
  async plan(ref: ImageReference): Promise<PullPlan> {
    const verified = await this.o.verifier?.verify(ref);
    const target = verified ? parseImageReference(verified.runReference) : ref;
    return {
      ...(await this.planOf(target)),
      verified: verified ? { digest: verified.digest, key: verified.key.file } : null,
    };
  }

  /** Whether images.verify covers an image (it is then pulled and run by its verified digest only). */
  covers(image: string): boolean {
    return this.o.verifier?.applies(parseImageReference(image)) ?? false;
  }

  /**
   * For the containers loop: null when images.verify does not cover the image (any local image
   * of that name will do), else the engine id of the image verified for it (undefined: none yet,
   * so it must be pulled, which verifies it, before a container is made from it).
   */
  verifiedId(image: string): string | null | undefined {
    if (!this.covers(image)) return null;
    return this.o.verifier!.lookup(parseImageReference(image).familiar)?.imageId;
  }

  /**
   * For the update flow: whether a covered image must be pulled (and so verified) before it can
   * run, because no image verified for that name is here. One verified before runs without the
   * registry (an offline robot), by the digest verified then, as the loop would.
   */
  async mustVerify(image: string): Promise<boolean> {
    if (!this.covers(image)) return false;
    return this.runReference(image).then(
      () => false,
      () => true,
    );
  }

  /**
   * What a container for this image is created from: the image itself when images.verify does
   * not cover it, else the image verified for it by repository@digest (or its id, when it came
   * through a mirror and the engine knows no digest of that name), never the tag, which may
   * have been moved since.
   */
  async runReference(image: string): Promise<string> {
    if (!this.covers(image)) return image;
    const ref = parseImageReference(image);
    const record = this.o.verifier!.lookup(ref.familiar);
    if (record?.imageId) {
      for (const candidate of [record.runReference, record.imageId]) {
        const id = await this.o.api.inspectImage(candidate).then(
          (i) => i?.Id,
          () => undefined,
        );
        if (id === record.imageId) return candidate;
      }
    }
    throw new AgentError(
      'unsigned_image',
      `${ref.familiar} has not been verified on this robot (not_verified): images.verify covers it, so it runs only once pulled and its signature checked; nothing was run`,
      { details: { reason: 'not_verified' } },
    );
  }

  private async planOf(ref: ImageReference): Promise<PullPlan> {
    const docker = this.requireEngine();
    await this.o.inventory.current();
    const manifest = await this.o.registry.manifest(ref, {
      os: docker.os ?? 'linux',
      architecture: docker.arch ?? 'amd64',
    });
    return planPull({
      ref,
      manifest,
      localLayers: this.o.inventory.localLayers(),
      diskFree: await freeBytes(docker.rootDir),
      diskFactor: this.o.config.diskFactor,
      diskReserve: this.o.config.diskReserve,
    });
  }

  async pull(
    ref: ImageReference,
    ctx: { requestId: string; progress: (fields: Record<string, unknown>) => void },
  ): Promise<PullResult> {
    const started = Date.now();
    const wanted = ref;
    try {
      // Signatures first: an image that does not verify is refused before anything but its
      // manifest and the signature payloads has been read, and a verified one is pulled by the
      // digest that was verified (the tag may move meanwhile).
      const verified = await this.o.verifier?.verify(ref);
      ref = verified ? parseImageReference(verified.runReference) : ref;
      const plan = await this.planOf(ref);
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
          this.o.logger.warn('pull from the mirror failed; trying the origin', {
            image: ref.familiar,
            error: toErrorInfo(err),
          });
        }
      }
      if (!used) throw lastError;
      const api = this.o.api;
      // The image is here: a refusal now (naming it, reading its id) is said as such, under pull_failed.
      const pulledAs = used.pullReference;
      const after = <T>(what: string, call: () => Promise<T>): Promise<T> =>
        call().catch((err: unknown) => {
          if (err instanceof AgentError) throw err;
          const message = `${pulledAs} was pulled but the engine refused to ${what}: ${engineMessage(err)}`;
          throw new AgentError('pull_failed', message, { cause: err });
        });
      if (used.source === 'mirror' && !verified) {
        // The image keeps its canonical name whatever it came through.
        const name = `${ref.familiarRepository}:${ref.tag ?? 'latest'}`;
        await after(`name it ${name}`, () => api.tagImage(pulledAs, ref.familiarRepository, ref.tag ?? 'latest'));
        await api.removeImage(used.pullReference, { noprune: true }).catch(() => undefined);
      }
      if (verified) {
        // Pulled by digest: the name asked for is given to exactly what was verified, so the
        // containers loop finds it here (and runs it by digest, from the record).
        const pulled = await after('read its id', () => this.inspected(pulledAs));
        if (wanted.tag) {
          const tag = wanted.tag;
          await after(`name it ${wanted.familiar}`, () => api.tagImage(pulled.Id, wanted.familiarRepository, tag));
        }
        // The mirror's name goes, as for any pull, unless it is the image's only name (asked by digest).
        if (used.source === 'mirror' && wanted.tag) {
          await api.removeImage(used.pullReference, { noprune: true }).catch(() => undefined);
        }
        verified.imageId = pulled.Id;
        this.o.verifier!.remember(verified);
        ref = wanted;
      }
      const inspect = await after('read its id', () => this.inspected(verified?.imageId ?? ref.familiar));
      // The pull's own engine events refresh the inventory; the answer need not wait for it.
      const result: PullResult = {
        ...(verified ? { verified } : {}),
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
      this.o.bus.emit('pull.failed', { id: ctx.requestId, image: wanted.familiar, error: toErrorInfo(err) });
      throw err;
    }
  }

  private async pullFrom(
    endpoint: Endpoint,
    ref: ImageReference,
    plan: PullPlan,
    ctx: { progress: (fields: Record<string, unknown>) => void },
  ): Promise<void> {
    const auth = endpoint.credentials ? { ...endpoint.credentials, serveraddress: ref.registry } : undefined;
    // A lost link to the engine is the engine's failure, not the registry's: explain() says which.
    const lostEngine = (err: unknown) => this.o.engine.explain(err, `pull ${ref.familiar}`);
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.o.api.pullImage(endpoint.pullReference, auth);
    } catch (err) {
      throw isTransportError(err) ? await lostEngine(err) : classifyPullError(err, ref.familiar);
    }
    let transport: unknown;
    try {
      await followEngineProgress(this.o.api, stream, {
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

  /** The image a pull has just made: its absence is the engine's failure, said so. */
  private async inspected(reference: string): Promise<{ Id: string }> {
    const image = await this.o.api.inspectImage(reference);
    if (!image) throw new AgentError('pull_failed', `the pull of ${reference} ended but the engine has no such image`);
    return image;
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
  // The engine answered (an error status): not the socket.
  if (err instanceof EngineError) return false;
  const code = (err as NodeJS.ErrnoException)?.code;
  const message = (err as Error)?.message ?? '';
  return (typeof code === 'string' && code.length > 0) || message === 'aborted' || message === 'socket hang up';
}

export function classifyPullError(err: unknown, image: string): AgentError {
  if (err instanceof AgentError) return err;
  const message = (err as Error).message ?? String(err);
  const lower = message.toLowerCase();
  if (lower.includes('no space left'))
    return new AgentError('disk_full', `Docker's disk filled up while pulling ${image}: ${message}`);
  if (lower.includes('manifest unknown') || lower.includes('not found') || lower.includes('does not exist'))
    return new AgentError('image_not_found', `no such image or tag: ${image} (${message})`);
  if (lower.includes('unauthorized') || lower.includes('authentication required') || lower.includes('denied'))
    return new AgentError('registry_unauthorized', `the registry refused the pull of ${image}: ${message}`);
  if (
    lower.includes('connection refused') ||
    lower.includes('no such host') ||
    lower.includes('timeout') ||
    lower.includes('i/o timeout')
  )
    return new AgentError('registry_unreachable', `cannot reach the registry of ${image}: ${message}`);
  return new AgentError('pull_failed', `the pull of ${image} failed: ${message}`);
}
