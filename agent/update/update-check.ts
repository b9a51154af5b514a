import cron from 'node-cron';
import type { DesiredContainer } from '../containers/container-plan.js';
import { toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { parseImageReference } from '../core/image-reference.js';
import type { RegistryClient } from '../images/registry-client.js';
import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';

export interface CheckResult {
  container: string;
  image: string;
  /** The image id here now, and the one the registry's tag names (its config digest). */
  local: string | null;
  available: string | null;
  changed: boolean;
  error?: { code: string; message: string };
}

/**
 * Asks the registry whether each container's tag now names another image, without pulling
 * (one manifest and its config digest, which is what the engine calls the image id): like
 * watchtower's check, on `update.check`'s schedule or by command. A change has the loop pull the tag, and update.
 */
export class UpdateCheck {
  readonly name = 'update-check';
  private task: ReturnType<typeof cron.schedule> | undefined;

  constructor(
    private readonly o: {
      schedule: string | undefined;
      desired: () => DesiredContainer[];
      registry: RegistryClient;
      /** Has the containers loop pull a tag that moved; the moved tag is then an update like any other. */
      refresh: (container: string, image: string) => void;
      store: StateStore;
      bus: EventBus;
      logger: Logger;
    },
  ) {}

  async start(): Promise<void> {
    if (this.o.schedule) {
      this.task = cron.schedule(
        this.o.schedule,
        () =>
          void this.checkNow().catch((err: unknown) =>
            this.o.logger.warn('update check failed', { error: toErrorInfo(err) }),
          ),
        { name: 'update-check', noOverlap: true },
      );
    }
  }

  async stop(): Promise<void> {
    await this.task?.destroy();
    this.task = undefined;
  }

  async checkNow(requestId?: string): Promise<CheckResult[]> {
    const state = this.o.store.get();
    const platform = { os: state.docker.os ?? 'linux', architecture: state.docker.arch ?? 'amd64' };
    const localId = new Map(state.images.flatMap((i) => i.tags.map((tag) => [tag, i.id] as const)));
    const results: CheckResult[] = [];
    for (const want of this.o.desired().filter((d) => d.enabled)) {
      const local = localId.get(want.image) ?? null;
      try {
        const manifest = await this.o.registry.manifest(parseImageReference(want.image), platform);
        const changed = local !== null && manifest.configDigest !== local;
        results.push({ container: want.name, image: want.image, local, available: manifest.configDigest, changed });
        const running = state.containers.find((c) => c.name === want.name && c.state !== 'absent');
        if (changed && running) this.o.refresh(want.name, want.image);
      } catch (err) {
        results.push({
          container: want.name,
          image: want.image,
          local,
          available: null,
          changed: false,
          error: toErrorInfo(err),
        });
      }
    }
    this.o.bus.emit('update.checked', { results, ...(requestId ? { id: requestId } : {}) });
    return results;
  }
}
