import { join } from 'node:path';
import type Docker from 'dockerode';
import type { AgentConfig } from '../config/types.js';
import { Backoff } from '../core/backoff.js';
import { AgentError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { DockerEngineLink, EngineEvent } from '../docker/engine-link.js';
import type { ImageInventory } from '../images/image-inventory.js';
import { parseImageReference } from '../images/image-reference.js';
import type { ImagePuller } from '../images/image-puller.js';
import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';
import type { ContainerState } from '../state/types.js';
import { ContainerExecutor } from './container-executor.js';
import { observeContainers, type Observation } from './container-observer.js';
import { planContainers, type ContainerVerdict, type DesiredContainer } from './container-plan.js';
import { LABELS } from './container-spec.js';
import { DesiredStore, effectiveDesired, mergeDesired, parseDesired, type DesiredMessage, type DesiredRecord } from './desired-state.js';
import { DeviceSync } from './device-sync.js';
import { resolveDeviceMappings } from './device-mappings.js';
import { HoldStore } from './hold-store.js';
import { StableNodes } from './stable-nodes.js';

/** What the containers loop needs of the update flow. */
export interface UpdatesPort {
  readonly busy: ReadonlySet<string>;
  readonly history: { rolledBack: ReadonlyMap<string, { image: string; imageId?: string; reason: string }> };
  startInBackground(container: string, image: string): void;
  /** Resolves once an update interrupted by a restart has been finished or undone. */
  ready(): Promise<void>;
}

export interface ContainersModuleOptions {
  config: Pick<AgentConfig, 'containers' | 'images' | 'devices' | 'reconcile' | 'state'>;
  /** A function: the update flow is built after this module, and needs it. */
  updates: () => UpdatesPort;
  engine: DockerEngineLink;
  puller: ImagePuller;
  inventory: ImageInventory;
  store: StateStore;
  bus: EventBus;
  logger: Logger;
}

/** Passes of observe-plan-execute per reconcile: each step changes what the next pass sees. */
const MAX_PASSES = 6;

/**
 * Keeps the robot's containers as its config and the fleet's desired state say: one reconcile
 * at a time (observe, plan as data, execute), run at start, on a desired change, on device and
 * engine events and every reconcile.interval, with backoff per container that fails. Device
 * nodes of running containers are kept right across replugs on a path of their own, so a
 * long reconcile never delays them.
 */
export class ContainersModule {
  readonly name = 'containers';
  private desired: DesiredRecord;
  private readonly desiredStore: DesiredStore;
  private readonly holds: HoldStore;
  private readonly pulling = new Set<string>();
  private readonly failures = new Map<string, { backoff: Backoff; retryAt: number; error: { code: string; message: string; at: string } }>();
  private readonly agentStarts = new Map<string, number>();
  readonly executor: ContainerExecutor;
  private readonly stableNodes: StableNodes;
  readonly deviceSync: DeviceSync;
  private observed: Observation[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private reconcileScheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private unsubscribers: Array<() => void> = [];
  private running = false;

  constructor(private readonly o: ContainersModuleOptions) {
    this.desiredStore = new DesiredStore(o.config.state.dir);
    this.holds = new HoldStore(o.config.state.dir);
    this.stableNodes = new StableNodes(join(o.config.state.dir, 'dev'));
    // Read now, not at start: a retained desired message may arrive before this module starts.
    this.desired = this.desiredStore.load(o.config);
    this.holds.load();
    this.executor = new ContainerExecutor({
      docker: () => this.docker(),
      spec: (name) => this.specOf(name),
      prepareDevices: async (name) => this.deviceSync.prepare(this.specOf(name)),
      stableNode: (key) => this.stableNodes.pathOf(key),
      startPull: (image, forContainer) => this.startPull(image, forContainer),
      startUpdate: (name, image) => o.updates().startInBackground(name, image),
      bus: o.bus,
      logger: o.logger,
    });
    this.deviceSync = new DeviceSync({
      catalog: o.config.devices,
      store: o.store,
      bus: o.bus,
      logger: o.logger,
      stableNodes: this.stableNodes,
      docker: () => this.docker(),
      desired: () => this.desiredContainers(),
    });
  }

  async start(): Promise<void> {
    this.running = true;
    const received = this.desired.received;
    this.publishDesiredInfo(received ? { appliedAt: new Date().toISOString(), ...(received.version !== undefined ? { version: received.version } : {}) } : {});
    const { engine, bus } = this.o;
    this.unsubscribers = [
      engine.onConnected(() => this.requestReconcile()),
      engine.onEngineEvent((event) => this.onEngineEvent(event)),
      bus.subscribe((event) => {
        if (event.type === 'device.attached' || event.type === 'device.detached' || event.type === 'device.changed') {
          void this.deviceSync.syncAll().catch(() => undefined);
          this.requestReconcile();
        }
      }),
    ];
    this.timer = setInterval(() => this.requestReconcile(), this.o.config.reconcile.interval * 1000);
    this.publishState(new Map());
    if (engine.available) this.requestReconcile();
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const off of this.unsubscribers) off();
    this.unsubscribers = [];
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    await this.queue.catch(() => undefined);
    await this.deviceSync.idle();
  }

  /** A <b>/desired message: checked against the local config, applied whole or refused whole. */
  async applyDesired(payload: Buffer): Promise<void> {
    let next: DesiredMessage | null;
    try {
      next = parseDesired(payload, this.o.config);
    } catch (err) {
      const error = toErrorInfo(err, 'invalid_desired');
      this.o.logger.warn('desired state refused', { error });
      this.o.bus.emit('desired.rejected', { error });
      this.o.store.update('desired', (d) => ({ ...d, rejected: { ...error, at: new Date().toISOString() } }));
      return;
    }
    // The broker hands the retained message again at every reconnect: the same one changes nothing.
    if (JSON.stringify(next) === JSON.stringify(this.desired.received)) return;
    // A newer word from the fleet overrides an operator's earlier stop or pin of the containers it names.
    const named = Object.keys(next?.containers ?? {});
    const pins = Object.fromEntries(Object.entries(this.desired.pins).filter(([name]) => next !== null && !named.includes(name)));
    this.desired = { received: next, pins };
    for (const name of named) this.holds.release(name);
    this.o.bus.emit('desired.changed', { containers: named });
    await this.holds.save().catch(() => undefined);
    await this.saveDesired();
    this.publishDesiredInfo(next ? { appliedAt: new Date().toISOString(), ...(next.version !== undefined ? { version: next.version } : {}) } : {});
    this.o.bus.emit('desired.applied', { containers: next?.containers ?? {}, ...(next?.version !== undefined ? { version: next.version } : {}) });
    this.requestReconcile();
  }

  /** Coalesces triggers: any number of them while one reconcile waits cost one more pass. */
  requestReconcile(): void {
    if (!this.running || this.reconcileScheduled) return;
    this.reconcileScheduled = true;
    setTimeout(() => {
      this.reconcileScheduled = false;
      void this.serially(() => this.reconcile()).catch((err: unknown) => this.o.logger.warn('reconcile failed', { error: toErrorInfo(err) }));
    }, 50);
  }

  /** Runs fn after whatever the loop is doing: commands and reconciles never interleave. */
  serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.catch(() => undefined).then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  async reconcile(): Promise<void> {
    if (!this.o.engine.available) {
      this.publishState(new Map());
      return;
    }
    // A swap the agent did not live to finish is settled before anything else touches containers.
    await this.o.updates().ready();
    for (let pass = 0; pass < MAX_PASSES; pass += 1) {
      this.observed = await observeContainers(this.docker());
      const desired = this.desiredContainers();
      // The engine's own list, not a cached one: an offline robot must not try to pull an image it has.
      const inventory = await this.o.inventory.current();
      const images = new Set(inventory.flatMap((i) => i.tags));
      const idOf = new Map(inventory.flatMap((i) => i.tags.map((tag) => [tag, i.id] as const)));
      const updates = this.o.updates();
      const plan = planContainers({
        desired,
        observed: this.observed,
        devices: new Map(desired.map((d) => [d.name, resolveDeviceMappings(d.spec, this.o.store.get().devices, this.o.config.devices)])),
        imagePresent: (image) => images.has(image),
        pulling: this.pulling,
        held: this.holds.names,
        backingOff: new Set([...this.failures].filter(([, f]) => f.retryAt > Date.now()).map(([name]) => name)),
        imageIdOf: (image) => idOf.get(image),
        updating: updates.busy,
        rolledBack: updates.history.rolledBack,
      });
      this.publishState(plan.verdicts);
      const acting = plan.steps.filter((s) => s.action !== 'pull' || !this.pulling.has(s.image));
      if (acting.length === 0) return;
      for (const step of acting) {
        try {
          await this.executor.run(step);
          if (step.action === 'start') this.agentStarts.set(step.name, (this.agentStarts.get(step.name) ?? 0) + 1);
          if (step.action !== 'pull') this.failures.delete(step.name);
        } catch (err) {
          this.noteFailure(step.name, step.action, err);
        }
      }
      if (acting.every((s) => s.action === 'pull')) return;
    }
    this.requestReconcile();
  }

  // --- commands -----------------------------------------------------------------------

  list(): ContainerState[] {
    return this.o.store.get().containers;
  }

  async startByCommand(name: string): Promise<ContainerState> {
    this.specOf(name);
    return this.serially(async () => {
      this.holds.release(name);
      this.failures.delete(name);
      await this.holds.save();
      await this.reconcile();
      return this.stateOf(name);
    });
  }

  async stopByCommand(name: string): Promise<ContainerState> {
    this.specOf(name);
    return this.serially(async () => {
      this.holds.hold(name);
      await this.holds.save();
      await this.reconcile();
      return this.stateOf(name);
    });
  }

  async restartByCommand(name: string): Promise<ContainerState> {
    this.specOf(name);
    return this.serially(async () => {
      this.observed = await observeContainers(this.docker());
      const found = this.requireContainer(name);
      try {
        await this.docker().getContainer(found.id).restart({ t: this.specOf(name).stopTimeout });
      } catch (err) {
        throw new AgentError('restart_failed', `container ${name} did not restart: ${toErrorInfo(err).message}`);
      }
      this.agentStarts.set(name, (this.agentStarts.get(name) ?? 0) + 1);
      this.holds.release(name);
      await this.holds.save();
      await this.reconcile();
      return this.stateOf(name);
    });
  }

  /** The container's id by name, from the last observation (absent: not_found). */
  requireContainer(name: string): Observation {
    this.specOf(name);
    const found = this.observed.find((o) => o.name === name);
    if (!found) throw new AgentError('not_found', `container ${name} does not exist yet (${this.stateOf(name).reason ?? 'not created'})`);
    return found;
  }

  specOf(name: string): AgentConfig['containers'][string] {
    const spec = Object.hasOwn(this.o.config.containers, name) ? this.o.config.containers[name] : undefined;
    if (!spec) throw new AgentError('unknown_container', `no container "${name}" in this robot's config (defined: ${Object.keys(this.o.config.containers).join(', ') || 'none'})`);
    return spec;
  }

  docker(): Docker {
    return this.o.engine.required();
  }

  // --- internals ----------------------------------------------------------------------

  desiredContainers(): DesiredContainer[] {
    return mergeDesired(this.o.config.containers, effectiveDesired(this.desired));
  }

  /** An image chosen by command (update, rollback): in force until the fleet names this container anew. */
  async pinImage(name: string, image: string): Promise<void> {
    this.specOf(name);
    this.desired = { ...this.desired, pins: { ...this.desired.pins, [name]: image } };
    await this.saveDesired();
  }

  private async saveDesired(): Promise<void> {
    await this.desiredStore.save(this.desired).catch((err: unknown) => this.o.logger.warn('could not persist the desired state', { error: err as Error }));
  }

  private stateOf(name: string): ContainerState {
    const found = this.o.store.get().containers.find((c) => c.name === name);
    if (!found) throw new AgentError('unknown_container', `no container "${name}" in this robot's config`);
    return found;
  }

  private onEngineEvent(event: EngineEvent): void {
    if (event.Type !== 'container' || event.Actor?.Attributes?.[LABELS.managed] !== 'true') return;
    if (event.Action === 'start' && event.Actor.ID) {
      // Docker made the nodes of the create-time paths; bring them to where the devices are now.
      void this.deviceSync.afterStart(event.Actor.ID).catch(() => undefined);
    }
    if (['create', 'start', 'die', 'stop', 'destroy', 'rename', 'pause', 'unpause'].includes(event.Action) || event.Action.startsWith('health_status')) {
      this.requestReconcile();
    }
  }

  private startPull(image: string, forContainer: string): void {
    if (this.pulling.has(image)) return;
    this.pulling.add(image);
    const requestId = `reconcile-${forContainer}-${Date.now()}`;
    this.o.puller
      .pull(parseImageReference(image), { requestId, progress: (fields) => this.o.bus.emit('pull.progress', { ...fields, id: requestId }) })
      .then(() => this.failures.delete(forContainer))
      .catch((err: unknown) => this.noteFailure(forContainer, 'pull', err))
      .finally(() => {
        this.pulling.delete(image);
        void this.o.inventory.refresh().catch(() => undefined).then(() => this.requestReconcile());
      });
  }

  /** A step for a container failed: an event, its error in state, and a retry with backoff. */
  noteFailure(name: string, action: string, err: unknown): void {
    const info = toErrorInfo(err, `${action}_failed`);
    const previous = this.failures.get(name);
    const backoff = previous?.backoff ?? new Backoff({ initialMs: this.o.config.reconcile.retry.initial * 1000, maxMs: this.o.config.reconcile.retry.max * 1000 });
    const delay = backoff.next();
    const error = { ...info, at: new Date().toISOString() };
    this.failures.set(name, { backoff, retryAt: Date.now() + delay, error });
    this.o.logger.warn('container step failed; will retry', { container: name, action, error: info, retryInMs: delay });
    this.o.bus.emit('container.failed', { name, action, error: info, retryInMs: delay });
    clearTimeout(this.retryTimer);
    const next = Math.min(...[...this.failures.values()].map((f) => f.retryAt)) - Date.now();
    this.retryTimer = setTimeout(() => this.requestReconcile(), Math.max(0, next) + 10);
  }

  private publishDesiredInfo(info: { appliedAt?: string; version?: string | number }): void {
    this.o.store.update('desired', (d) => ({ appliedAt: info.appliedAt ?? null, ...(info.version !== undefined ? { version: info.version } : {}), ...(d.rejected ? { rejected: d.rejected } : {}) }));
  }

  private publishState(verdicts: Map<string, ContainerVerdict>): void {
    const devices = this.o.store.get().devices;
    const containers = this.desiredContainers().map((want): ContainerState => {
      const have = this.observed.find((o) => o.name === want.name);
      const resolved = resolveDeviceMappings(want.spec, devices, this.o.config.devices);
      const verdict = verdicts.get(want.name) ?? { inSync: false, reason: this.o.engine.available ? 'not reconciled yet' : 'Docker engine unavailable' };
      const failure = this.failures.get(want.name);
      return {
        name: want.name,
        image: want.image,
        imageId: have?.imageId ?? null,
        ...(have && have.runImage !== want.image && have.runImage !== have.image ? { runImage: have.runImage } : {}),
        state: have?.state ?? 'absent',
        health: have?.health ?? null,
        startedAt: have?.startedAt ?? null,
        restarts: (have?.restartCount ?? 0) + (this.agentStarts.get(want.name) ?? 0),
        exitCode: have?.exitCode ?? null,
        devices: have ? this.deviceSync.devicesOf(have, resolved.mappings) : [],
        missingDevices: resolved.missing,
        desired: { image: want.image, enabled: want.enabled, source: want.source },
        inSync: verdict.inSync && !failure,
        ...(verdict.reason ? { reason: verdict.reason } : {}),
        ...(failure ? { error: failure.error } : {}),
      };
    });
    this.o.store.update('containers', () => containers);
  }
}
