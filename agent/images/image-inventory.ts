import type { Logger } from '../core/logger.js';
import type { Engine, ImageUsage } from '../docker/engine.js';
import type { DockerEngineLink } from '../docker/engine-link.js';
import type { StateStore } from '../state/state-store.js';
import type { ImageSummary } from '../state/types.js';
import { compareCreated } from './image-pruner.js';

/**
 * The images on the robot as state.images: what `docker image ls` and `docker system df -v`
 * show (tags, digests, shared and unique bytes) plus each image's RootFS layers from
 * `docker image inspect`. Refreshed when the engine connects and after every image event.
 */
export class ImageInventory {
  readonly name = 'images';
  /**
   * What inspect tells per image id (layers, and Created to the nanosecond, where df has whole
   * seconds and images built in one second would tie): it never changes, so each is read once.
   */
  private readonly inspected = new Map<string, { layers: string[]; created: string }>();
  private unsubscribers: Array<() => void> = [];
  private refreshTimer: NodeJS.Timeout | undefined;
  private refreshing: Promise<ImageSummary[]> | undefined;
  /** Set by every image event; until the next read, the cached layers may be out of date. */
  private stale = true;

  constructor(
    private readonly options: {
      /** The link: when the engine connects, and its image events. */
      engine: Pick<DockerEngineLink, 'available' | 'onConnected' | 'onEngineEvent'>;
      /** The Engine port the images are read through. */
      api: Pick<Engine, 'imageDiskUsage' | 'inspectImage'>;
      store: StateStore;
      logger: Logger;
      /** images.verify: what was verified of an image id, for state.images[].verified. */
      verifiedOf?: (imageId: string) => ImageSummary['verified'] | undefined;
    },
  ) {}

  async start(): Promise<void> {
    const { engine } = this.options;
    this.unsubscribers = [
      engine.onConnected(() => {
        this.stale = true;
        this.scheduleRefresh(0);
      }),
      engine.onEngineEvent((event) => {
        if (
          event.Type === 'image' ||
          (event.Type === 'container' && (event.Action === 'create' || event.Action === 'destroy'))
        ) {
          this.stale = true;
          this.scheduleRefresh(300);
        }
      }),
    ];
    if (engine.available) this.scheduleRefresh(0);
  }

  async stop(): Promise<void> {
    for (const off of this.unsubscribers) off();
    this.unsubscribers = [];
    clearTimeout(this.refreshTimer);
    await this.refreshing?.catch(() => undefined);
  }

  /** Every layer diff id present on the engine: what a pull would not need to download. */
  localLayers(): Set<string> {
    return new Set([...this.inspected.values()].flatMap((i) => i.layers));
  }

  /**
   * The inventory as of the last image event: read again only when one happened since (a
   * `docker system df` costs tens of milliseconds, which a pull should not pay twice).
   */
  async current(): Promise<ImageSummary[]> {
    if (this.stale || this.refreshing) return this.refresh();
    return this.options.store.get().images;
  }

  /** Reads the engine now; concurrent callers share one read. */
  refresh(): Promise<ImageSummary[]> {
    this.refreshing ??= this.read()
      .catch((err: unknown) => {
        // Nothing was read: the list in state is as old as before, and the next look reads again.
        this.stale = true;
        throw err;
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  private scheduleRefresh(delayMs: number): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refresh().catch((err: unknown) =>
        this.options.logger.warn('image inventory refresh failed', { error: err as Error }),
      );
    }, delayMs);
  }

  private async read(): Promise<ImageSummary[]> {
    this.stale = false;
    const api = this.options.api;
    const images: ImageUsage[] = await api.imageDiskUsage();
    for (const image of images) {
      if (this.inspected.has(image.Id)) continue;
      try {
        const inspect = await api.inspectImage(image.Id);
        // Deleted between the list and the inspect: the next refresh will not list it.
        if (!inspect) continue;
        this.inspected.set(image.Id, {
          layers: inspect.RootFS?.Layers ?? [],
          created: inspect.Created ?? new Date(image.Created * 1000).toISOString(),
        });
      } catch {
        // Refused (a busy engine): read again at the next refresh, which reads every one not read yet.
      }
    }
    const present = new Set(images.map((i) => i.Id));
    for (const id of this.inspected.keys()) if (!present.has(id)) this.inspected.delete(id);
    const summaries: ImageSummary[] = images
      .map((i) => {
        const shared = i.SharedSize >= 0 ? i.SharedSize : 0;
        const verified = this.options.verifiedOf?.(i.Id);
        return {
          ...(verified ? { verified } : {}),
          id: i.Id,
          tags: (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>').sort(),
          digests: (i.RepoDigests ?? []).filter((d) => !d.startsWith('<none>')).sort(),
          size: i.Size,
          sharedSize: shared,
          uniqueSize: i.Size - shared,
          created: this.inspected.get(i.Id)?.created ?? new Date(i.Created * 1000).toISOString(),
          layers: this.inspected.get(i.Id)?.layers ?? [],
          containers: Math.max(0, i.Containers),
        };
      })
      .sort((a, b) => compareCreated(b.created, a.created) || a.id.localeCompare(b.id));
    this.options.store.update('images', () => summaries);
    return summaries;
  }
}
