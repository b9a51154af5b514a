import type { AgentConfig, ContainerSpec } from '../config/types.js';
import { toErrorInfo } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import type { Logger } from '../core/logger.js';
import type { Engine } from '../docker/engine.js';
import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';
import type { ObservedContainer, DesiredContainer } from './container-plan.js';
import { LABELS, parseDevicesLabel } from './container-spec.js';
import {
  isLiteralDevice,
  numberMappings,
  resolveDeviceMappings,
  type DeviceMapping,
  type NumberedMapping,
} from './device-mappings.js';
import { applyNodeSync, planNodeSync } from './node-sync.js';
import type { StableNodes } from './stable-nodes.js';

export interface DeviceSyncDeps {
  catalog: AgentConfig['devices'];
  store: StateStore;
  bus: EventBus;
  logger: Logger;
  stableNodes: StableNodes;
  /** The Engine port (the loop's): node syncs run as an exec, running containers by list. */
  engine: Engine;
  desired: () => DesiredContainer[];
}

interface RunningContainer {
  id: string;
  labels: Record<string, string>;
}

/**
 * Live replug: when a device moves, the host's stable nodes take its new numbers and every
 * running container with `replug: live` gets its nodes made at the same paths (and the stale
 * ones removed) while it runs: no restart, its writable layer untouched. One sync at a time.
 */
export class DeviceSync {
  /** Per container id: the catalog device paths made inside it, with the numbers they carry. */
  private readonly made = new Map<string, Map<string, string>>();
  private readonly queue = new SerialQueue((err) => {
    this.d.logger.warn('device sync failed', { error: toErrorInfo(err) });
  });

  constructor(private readonly d: DeviceSyncDeps) {}

  /** Mappings for a container about to be created, with their stable nodes made. */
  async prepare(spec: Pick<ContainerSpec, 'devices'>): Promise<DeviceMapping[]> {
    const { mappings } = resolveDeviceMappings(spec, this.d.store.get().devices, this.d.catalog);
    const numbered = numberMappings(mappings.filter((m) => !isLiteralDevice(m.device)));
    await this.d.stableNodes.sync(numbered);
    // A catalog node that vanished since the scan is left out, as an absent device is.
    return [...mappings.filter((m) => isLiteralDevice(m.device)), ...numbered];
  }

  /** After a device event: every live container, now. */
  syncAll(): Promise<void> {
    return this.serially(async () => {
      const running = await this.runningManaged();
      // Containers replaced by updates and recreates leave ids behind: months of them otherwise.
      const live = new Set([...running.values()].map((c) => c.id));
      for (const id of this.made.keys()) if (!live.has(id)) this.made.delete(id);
      for (const want of this.d.desired()) {
        if (want.spec.replug !== 'live') continue;
        const { numbered, missing } = await this.current(want);
        const found = running.get(want.name);
        if (found) await this.syncContainer(want.name, found, numbered, missing);
      }
    });
  }

  /** After Docker started a container: its nodes are those of its create-time paths. */
  afterStart(id: string): Promise<void> {
    return this.serially(async () => {
      this.made.delete(id);
      const running = await this.runningManaged();
      const [name, found] = [...running].find(([, c]) => c.id === id) ?? [];
      const want = this.d.desired().find((d) => d.name === name);
      if (!name || !found || !want || want.spec.replug !== 'live') return;
      const { numbered, missing } = await this.current(want);
      await this.syncContainer(name, found, numbered, missing);
    });
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** For state: where each device is inside the container (live: where it is now). */
  devicesOf(have: ObservedContainer, now: DeviceMapping[]): Array<{ device: string; host: string; container: string }> {
    const want = this.d.desired().find((d) => d.name === have.name);
    const rows =
      want?.spec.replug === 'recreate'
        ? [...now.filter((m) => isLiteralDevice(m.device)), ...have.createdDevices]
        : now;
    return rows.map((m) => ({ device: m.device, host: m.host, container: m.container }));
  }

  private async current(want: DesiredContainer): Promise<{ numbered: NumberedMapping[]; missing: string[] }> {
    const { mappings, missing } = resolveDeviceMappings(want.spec, this.d.store.get().devices, this.d.catalog);
    const numbered = numberMappings(mappings.filter((m) => !isLiteralDevice(m.device)));
    await this.d.stableNodes.sync(numbered);
    return { numbered, missing };
  }

  private async syncContainer(
    name: string,
    { id, labels }: RunningContainer,
    wanted: NumberedMapping[],
    missing: string[],
  ): Promise<void> {
    let known = this.made.get(id);
    if (!known) {
      // What Docker made at start: the catalog paths of creation time, numbers unknown (the
      // script inside compares and only remakes what is wrong).
      known = new Map(parseDevicesLabel(labels[LABELS.devices]).map((m) => [m.container, '?']));
      this.made.set(id, known);
    }
    const numbers = (m: NumberedMapping) => `${m.major}:${m.minor}`;
    const plan = planNodeSync(
      wanted.filter((m) => known.get(m.container) !== numbers(m)),
      new Set(known.keys()),
    );
    plan.remove = plan.remove.filter((p) => !wanted.some((m) => m.container === p));
    if (plan.make.length === 0 && plan.remove.length === 0) return;
    try {
      const outcome = await applyNodeSync(this.d.engine, id, plan);
      for (const path of plan.remove) known.delete(path);
      for (const m of plan.make) known.set(m.container, numbers(m));
      if (outcome.made.length > 0 || outcome.removed.length > 0) {
        this.d.logger.info('container device nodes updated', {
          container: name,
          made: outcome.made,
          removed: outcome.removed,
        });
        this.d.bus.emit('container.devices', {
          name,
          policy: 'live',
          made: plan.make
            .filter((m) => outcome.made.includes(m.container))
            .map((m) => ({ device: m.device, host: m.host, container: m.container, major: m.major, minor: m.minor })),
          removed: outcome.removed,
          missing,
        });
      }
    } catch (err) {
      const error = toErrorInfo(err, 'node_sync_failed');
      this.d.logger.warn('could not update device nodes in a container', { container: name, error });
      this.d.bus.emit('container.devices', { name, policy: 'live', made: [], removed: [], missing, error });
    }
  }

  private async runningManaged(): Promise<Map<string, RunningContainer>> {
    const list = await this.d.engine.listContainers({ label: [`${LABELS.managed}=true`], status: ['running'] });
    // By Docker's name: one moved aside by the update flow keeps the label of the name it had.
    const named = list.map((c) => ({ name: c.Names[0]?.replace(/^\//, '') ?? c.Id, id: c.Id, labels: c.Labels }));
    return new Map(
      named
        .filter((c) => c.labels[LABELS.name] === undefined || c.labels[LABELS.name] === c.name)
        .map((c) => [c.name, { id: c.id, labels: c.labels }]),
    );
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.run(fn);
  }
}
