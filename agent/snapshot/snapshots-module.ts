import cron from 'node-cron';
import type { AgentConfig } from '../config/types.js';
import { toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { DockerEngineLink } from '../docker/engine-link.js';
import type { EventBus } from '../state/event-bus.js';
import type { SnapshotRecords } from './snapshot-records.js';
import type { Snapshotter } from './snapshotter.js';

/**
 * The snapshots module: keeps state.snapshots from the engine, and on snapshots.schedule takes
 * a snapshot of each listed container that changed since its last one.
 */
export class SnapshotsModule {
  readonly name = 'snapshots';
  private task: ReturnType<typeof cron.schedule> | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly o: {
      config: AgentConfig['snapshots'];
      engine: DockerEngineLink;
      snapshotter: Snapshotter;
      records: SnapshotRecords;
      bus: EventBus;
      logger: Logger;
    },
  ) {}

  async start(): Promise<void> {
    this.o.records.load();
    const refresh = () =>
      void this.o.snapshotter
        .refreshState()
        .catch((err: unknown) => this.o.logger.warn('snapshot list failed', { error: toErrorInfo(err) }));
    this.unsubscribe = this.o.engine.onConnected(refresh);
    if (this.o.engine.available) refresh();
    if (this.o.config.schedule) {
      this.task = cron.schedule(this.o.config.schedule, () => this.runSchedule(), {
        name: 'snapshots',
        noOverlap: true,
      });
    }
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.task?.destroy();
    this.task = undefined;
  }

  /** One scheduled round: each listed container, skipped when nothing changed since its last snapshot. */
  async runSchedule(): Promise<void> {
    for (const container of this.o.config.containers) {
      try {
        const { fingerprint, last } = await this.o.snapshotter.fingerprint(container);
        if (fingerprint === null || fingerprint === last) {
          this.o.bus.emit('snapshot.skipped', {
            container,
            reason: fingerprint === null ? 'no changes' : 'no changes since the last snapshot',
          });
          continue;
        }
        await this.o.snapshotter.take({ container, message: 'scheduled snapshot', push: this.o.config.push });
      } catch (err) {
        this.o.logger.warn('scheduled snapshot failed', { container, error: toErrorInfo(err) });
      }
    }
  }
}
