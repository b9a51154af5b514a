import { join } from 'node:path';
import type Docker from 'dockerode';
import type { AgentConfig } from '../config/types.js';
import { Backoff } from '../core/backoff.js';
import { AgentError, toErrorInfo } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import type { Logger } from '../core/logger.js';
import { DockerodeEngine } from '../docker/dockerode-engine.js';
import type { Engine } from '../docker/engine.js';
import type { DockerEngineLink, EngineEvent } from '../docker/engine-link.js';
import type { ImageInventory } from '../images/image-inventory.js';
import { parseImageReference } from '../images/image-reference.js';
import type { ImagePuller } from '../images/image-puller.js';
import { reasonOf } from '../security/unauthorized.js';
import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';
import type { ContainerState } from '../state/types.js';
import { ContainerExecutor } from './container-executor.js';
import { observeContainers, type Observation } from './container-observer.js';
import { planContainers, type ContainerVerdict, type DesiredContainer } from './container-plan.js';
import { LABELS } from './container-spec.js';
import {
  DesiredStore,
  effectiveDesired,
  mergeDesired,
  parseDesired,
  type DesiredMessage,
  type DesiredRecord,
} from './desired-state.js';
import { DeviceSync } from './device-sync.js';
import { resolveDeviceMappings } from './device-mappings.js';
import { HoldStore } from './hold-store.js';
import { RecreateJournal } from './recreate-journal.js';
import type { ReplaceEntry } from './replace-journal.js';
import { leftAside, settleAside, settleReplacement } from './replace-recovery.js';
import { StableNodes } from './stable-nodes.js';

/** What the containers loop needs of the update flow. */
export interface UpdatesPort {
  readonly busy: ReadonlySet<string>;
  readonly history: { rolledBack: ReadonlyMap<string, { image: string; imageId?: string; reason: string }> };
  startInBackground(container: string, image: string): void;
  /** When a container's failed background update may be begun again (ms since the epoch), if it backs off. */
  retryAt(container: string): number | undefined;
  /** Resolves once an update interrupted by a restart has been finished or undone. */
  ready(): Promise<void>;
}

export interface ContainersModuleOptions {
  config: Pick<AgentConfig, 'containers' | 'images' | 'devices' | 'reconcile' | 'state' | 'snapshots'>;
  /** A function: the update flow is built after this module, and needs it. */
  updates: () => UpdatesPort;
  engine: DockerEngineLink;
  /** What the loop asks of the engine (the Engine port); by default dockerode over `engine`. */
  api?: Engine;
  puller: ImagePuller;
  inventory: ImageInventory;
  store: StateStore;
  bus: EventBus;
  logger: Logger;
  /** The clock for backoff (tests inject one). */
  now?: () => number;
  /** Fault injection for the crash tests only (ROBOT_AGENT_TEST_KILL_AT in main.ts). */
  onRecreateStep?: (step: string) => void;
  /** Signed desired states (security/desired-signature.ts); without it every message is read as is. */
  desiredSignature?: { admit(payload: Buffer): Promise<{ payload: Buffer; accept(): void }> };
}

/** A journaled recreate's settle, in the words the recreate's log and event have always used. */
const SETTLED = { completed: 'completed', rolledback: 'restored', untouched: 'nothing' } as const;

/** Passes of observe-plan-execute per reconcile: each step changes what the next pass sees. */
const MAX_PASSES = 6;

/** How long a stop or restart by command waits for an update of its container to end. */
export const UPDATE_WAIT_MS = 120_000;

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
  private readonly failures = new Map<
    string,
    { backoff: Backoff; retryAt: number; error: { code: string; message: string; at: string } }
  >();
  private readonly agentStarts = new Map<string, number>();
  /** Ids of containers that left the config and were stopped once: not fought over after. */
  private readonly orphansStopped = new Set<string>();
  /** Containers a start command asked for: started whatever their restart policy says. */
  private readonly startNow = new Set<string>();
  private readonly recreateJournal: RecreateJournal;
  /** A recreate cut short is settled before the loop acts: at start and when the engine returns. */
  private recreateSettled = false;
  private readonly updateWaiters = new Set<() => void>();
  private readonly recoverFailed = new Set<string>();
  private readonly now: () => number;
  readonly executor: ContainerExecutor;
  /** The Engine port every change of the loop goes through. */
  readonly api: Engine;
  private readonly stableNodes: StableNodes;
  readonly deviceSync: DeviceSync;
  private observed: Observation[] = [];
  private readonly queue = new SerialQueue();
  private reconcileScheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private passTimer: NodeJS.Timeout | undefined;
  private readonly unconverged: Backoff;
  private unsubscribers: Array<() => void> = [];
  private running = false;
  /** Once stopped, never acts again: a reconcile queued or timed before the stop does nothing. */
  private stopped = false;
  private reconcileTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: ContainersModuleOptions) {
    this.desiredStore = new DesiredStore(o.config.state.dir);
    this.holds = new HoldStore(o.config.state.dir);
    this.stableNodes = new StableNodes(join(o.config.state.dir, 'dev'));
    this.recreateJournal = new RecreateJournal(o.config.state.dir);
    this.now = o.now ?? Date.now;
    this.api = o.api ?? new DockerodeEngine(() => o.engine.required());
    const { retry } = o.config.reconcile;
    this.unconverged = new Backoff({ initialMs: retry.initial * 1000, maxMs: retry.max * 1000 });
    // Read now, not at start: a retained desired message may arrive before this module starts.
    this.desired = this.desiredStore.load(o.config);
    this.holds.load();
    this.executor = new ContainerExecutor({
      engine: this.api,
      spec: (name) => this.specOf(name),
      prepareDevices: async (name) => this.deviceSync.prepare(this.specOf(name)),
      stableNode: (key) => this.stableNodes.pathOf(key),
      startPull: (image, forContainer) => this.startPull(image, forContainer),
      startUpdate: (name, image) => o.updates().startInBackground(name, image),
      runReference: async (image) => (await o.puller.runReference?.(image)) ?? image,
      commitRepository: o.config.snapshots.repository,
      journal: this.recreateJournal,
      ...(o.onRecreateStep ? { onRecreateStep: o.onRecreateStep } : {}),
      // Not only at the next start or reconnect: the old container may be aside under another name.
      onUnsettled: () => {
        this.recreateSettled = false;
      },
      bus: o.bus,
      logger: o.logger,
    });
    this.deviceSync = new DeviceSync({
      catalog: o.config.devices,
      store: o.store,
      bus: o.bus,
      logger: o.logger,
      stableNodes: this.stableNodes,
      engine: this.api,
      desired: () => this.desiredContainers(),
    });
  }

  async start(): Promise<void> {
    this.running = true;
    const received = this.desired.received;
    this.publishDesiredInfo(
      received
        ? {
            appliedAt: new Date().toISOString(),
            ...(received.version !== undefined ? { version: received.version } : {}),
          }
        : {},
    );
    const { engine, bus } = this.o;
    this.unsubscribers = [
      engine.onConnected(() => {
        this.recreateSettled = false;
        this.requestReconcile();
      }),
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
    this.stopped = true;
    clearTimeout(this.reconcileTimer);
    for (const off of this.unsubscribers) off();
    this.unsubscribers = [];
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.passTimer);
    await this.queue.idle();
    await this.deviceSync.idle();
  }

  /** A <b>/desired message: checked against the local config, applied whole or refused whole. */
  async applyDesired(payload: Buffer): Promise<void> {
    let next: DesiredMessage | null;
    let accept: () => void = () => undefined;
    try {
      // The signature first: nothing of an unsigned message is read further.
      const admitted = this.o.desiredSignature ? await this.o.desiredSignature.admit(payload) : undefined;
      next = parseDesired(admitted?.payload ?? payload, this.o.config);
      if (admitted) accept = admitted.accept;
    } catch (err) {
      const reason = reasonOf(err);
      const error = { ...toErrorInfo(err, 'invalid_desired'), ...(reason ? { reason } : {}) };
      this.o.logger.warn('desired state refused', { error });
      this.o.bus.emit('desired.rejected', { error });
      this.o.store.update('desired', (d) => ({ ...d, rejected: { ...error, at: new Date().toISOString() } }));
      return;
    }
    accept();
    // A message the agent can take replaces the retained one it refused: that refusal is history.
    if (this.o.store.get().desired.rejected) {
      this.o.store.update('desired', ({ rejected: _, ...rest }) => rest);
    }
    // The broker hands the retained message again at every reconnect: the same one changes nothing.
    if (JSON.stringify(next) === JSON.stringify(this.desired.received)) return;
    // A newer word from the fleet overrides an operator's earlier stop or pin of the containers it names.
    const named = Object.keys(next?.containers ?? {});
    const pins = Object.fromEntries(
      Object.entries(this.desired.pins).filter(([name]) => next !== null && !named.includes(name)),
    );
    this.desired = { received: next, pins };
    for (const name of named) this.holds.release(name);
    this.o.bus.emit('desired.changed', { containers: named });
    await this.holds.save().catch(() => undefined);
    await this.saveDesired();
    this.publishDesiredInfo(
      next
        ? { appliedAt: new Date().toISOString(), ...(next.version !== undefined ? { version: next.version } : {}) }
        : {},
    );
    this.o.bus.emit('desired.applied', {
      containers: next?.containers ?? {},
      ...(next?.version !== undefined ? { version: next.version } : {}),
    });
    this.requestReconcile();
  }

  /** Coalesces triggers: any number of them while one reconcile waits cost one more pass. */
  requestReconcile(): void {
    // The update flow asks for a reconcile when an update ends: a command waiting on it looks again.
    for (const wake of [...this.updateWaiters]) wake();
    if (!this.running || this.reconcileScheduled) return;
    this.reconcileScheduled = true;
    this.reconcileTimer = setTimeout(() => {
      this.reconcileScheduled = false;
      void this.serially(() => this.reconcile()).catch((err: unknown) =>
        this.o.logger.warn('reconcile failed', { error: toErrorInfo(err) }),
      );
    }, 50);
  }

  /** Runs fn after whatever the loop is doing: commands and reconciles never interleave. */
  serially<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.run(fn);
  }

  async reconcile(): Promise<void> {
    if (this.stopped) return;
    if (!this.o.engine.available) {
      this.publishState(new Map());
      return;
    }
    // A swap the agent did not live to finish is settled before anything else touches containers.
    await this.o.updates().ready();
    if (!this.recreateSettled) await this.settleRecreates();
    for (let pass = 0; pass < MAX_PASSES; pass += 1) {
      if (this.stopped) return;
      this.observed = await observeContainers(this.api);
      for (const id of this.orphansStopped) if (!this.observed.some((o) => o.id === id)) this.orphansStopped.delete(id);
      const desired = this.desiredContainers();
      // A container gone from both the config and the engine has nothing left to retry.
      for (const name of this.failures.keys()) {
        const known = desired.some((d) => d.name === name) || this.observed.some((o) => o.name === name);
        if (!known) this.failures.delete(name);
      }
      // The engine's own list, not a cached one: an offline robot must not try to pull an image it has.
      const inventory = await this.o.inventory.current();
      const images = new Set(inventory.flatMap((i) => i.tags));
      const idOf = new Map(inventory.flatMap((i) => i.tags.map((tag) => [tag, i.id] as const)));
      const ids = new Set(inventory.map((i) => i.id));
      const updates = this.o.updates();
      const plan = planContainers({
        desired,
        observed: this.observed,
        devices: new Map(
          desired.map((d) => [
            d.name,
            resolveDeviceMappings(d.spec, this.o.store.get().devices, this.o.config.devices),
          ]),
        ),
        // images.verify: only the image verified for that name counts (else it is pulled, and verified).
        imagePresent: (image) => {
          const verified = this.o.puller.verifiedId?.(image) ?? null;
          return verified === null ? images.has(image) : verified !== undefined && ids.has(verified);
        },
        pulling: this.pulling,
        held: this.holds.names,
        backingOff: this.backingOff(),
        imageIdOf: (image) => idOf.get(image),
        updating: updates.busy,
        rolledBack: updates.history.rolledBack,
        updateRetry: this.updateRetry(
          desired.map((d) => d.name),
          updates,
        ),
        startNow: this.startNow,
        orphansStopped: this.orphansStopped,
      });
      // In sync once its retry time has passed: whatever failed came right, the backoff starts over.
      for (const [name, verdict] of plan.verdicts) {
        if (verdict.inSync && (this.failures.get(name)?.retryAt ?? Infinity) <= this.now()) this.failures.delete(name);
      }
      this.publishState(plan.verdicts);
      const acting = plan.steps.filter((s) => s.action !== 'pull' || !this.pulling.has(s.image));
      if (acting.length === 0) {
        this.unconverged.reset();
        return;
      }
      for (const step of acting) {
        try {
          await this.executor.run(step);
          if (step.action === 'start') this.agentStarts.set(step.name, (this.agentStarts.get(step.name) ?? 0) + 1);
          if (step.action === 'start' || step.action === 'run') this.startNow.delete(step.name);
          if (step.action === 'stop' && step.reason === 'orphan') this.orphansStopped.add(step.id);
          // A pull or an update only begins here; its failure (noted when it ends) keeps its backoff.
          if (step.action !== 'pull' && step.action !== 'update') this.failures.delete(step.name);
        } catch (err) {
          this.noteFailure(step.name, step.action, err);
        }
      }
      if (acting.every((s) => s.action === 'pull')) return;
    }
    // Steps that succeed and yet leave more to do pass after pass: again later, with backoff.
    clearTimeout(this.passTimer);
    this.passTimer = setTimeout(() => this.requestReconcile(), this.unconverged.next());
  }

  // --- commands -----------------------------------------------------------------------

  list(): ContainerState[] {
    return this.o.store.get().containers;
  }

  /**
   * Releases a stop by command (on disk first: a full disk refuses and changes nothing) and
   * starts the container now, whatever its restart policy. Answers with its state; a start the
   * engine refused is the answer's error, not a success with a stopped container.
   */
  async startByCommand(name: string): Promise<ContainerState> {
    this.specOf(name);
    return this.afterUpdate(name, 'start', async () => {
      await this.holds.set(name, false);
      this.failures.delete(name);
      this.startNow.add(name);
      await this.reconcile();
      return this.answer(name, 'start');
    });
  }

  /** Holds the container stopped (on disk first, as for start); answers once it is stopped. */
  async stopByCommand(name: string): Promise<ContainerState> {
    this.specOf(name);
    return this.afterUpdate(name, 'stop', async () => {
      await this.holds.set(name, true);
      this.failures.delete(name);
      this.startNow.delete(name);
      await this.reconcile();
      return this.answer(name, 'stop');
    });
  }

  async restartByCommand(name: string): Promise<ContainerState> {
    this.specOf(name);
    return this.afterUpdate(name, 'restart', async () => {
      this.observed = await observeContainers(this.api);
      const found = this.requireContainer(name);
      // Released first, on disk: a restarted container must not be stopped again by its old hold.
      await this.holds.set(name, false);
      // The executor's, as every other change of a container: the command does not call the engine.
      await this.executor.restart(found.id, name);
      this.agentStarts.set(name, (this.agentStarts.get(name) ?? 0) + 1);
      this.failures.delete(name);
      await this.reconcile();
      return this.answer(name, 'restart');
    });
  }

  /**
   * Runs a command's work in the loop's turn once no update owns the container: a stop or a
   * restart in the middle of a swap would hit the new container and the update would blame its
   * image. Waits at most UPDATE_WAIT_MS, outside the loop's turn (other containers go on), then
   * refuses with update_in_progress, having changed nothing.
   */
  private async afterUpdate<T>(name: string, what: string, fn: () => Promise<T>): Promise<T> {
    const deadline = this.now() + UPDATE_WAIT_MS;
    for (;;) {
      await this.untilNotUpdating(name, what, deadline);
      const result = await this.serially(async () => {
        return this.o.updates().busy.has(name) ? undefined : { value: await fn() };
      });
      if (result) return result.value;
    }
  }

  private async untilNotUpdating(name: string, what: string, deadline: number): Promise<void> {
    while (this.o.updates().busy.has(name)) {
      const left = deadline - this.now();
      if (left <= 0) {
        const why = `${name} is still being updated after ${UPDATE_WAIT_MS / 1000} s`;
        const message = `${why}; the ${what} was not done, ask again when the update has ended`;
        throw new AgentError('update_in_progress', message);
      }
      // Woken when the update ends (the flow asks for a reconcile then); the timer is a backstop.
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.updateWaiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 1000));
        this.updateWaiters.add(wake);
      });
    }
  }

  /** The container's state after a command, or the failure the command's step ran into. */
  private answer(name: string, action: string): ContainerState {
    const failure = this.failures.get(name);
    if (failure) throw new AgentError(failure.error.code, `${action} ${name}: ${failure.error.message}`);
    return this.stateOf(name);
  }

  /** The container's id by name, from the last observation (absent: not_found). */
  requireContainer(name: string): Observation {
    this.specOf(name);
    const found = this.observed.find((o) => o.name === name);
    if (!found)
      throw new AgentError(
        'not_found',
        `container ${name} does not exist yet (${this.stateOf(name).reason ?? 'not created'})`,
      );
    return found;
  }

  specOf(name: string): AgentConfig['containers'][string] {
    const spec = Object.hasOwn(this.o.config.containers, name) ? this.o.config.containers[name] : undefined;
    if (!spec)
      throw new AgentError(
        'unknown_container',
        `no container "${name}" in this robot's config (defined: ${Object.keys(this.o.config.containers).join(', ') || 'none'})`,
      );
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
    await this.desiredStore
      .save(this.desired)
      .catch((err: unknown) => this.o.logger.warn('could not persist the desired state', { error: err as Error }));
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
    if (
      ['create', 'start', 'die', 'stop', 'destroy', 'rename', 'pause', 'unpause'].includes(event.Action) ||
      event.Action.startsWith('health_status')
    ) {
      this.requestReconcile();
    }
  }

  private startPull(image: string, forContainer: string): void {
    if (this.pulling.has(image)) return;
    this.pulling.add(image);
    const requestId = `reconcile-${forContainer}-${Date.now()}`;
    this.o.puller
      .pull(parseImageReference(image), {
        requestId,
        progress: (fields) => this.o.bus.emit('pull.progress', { ...fields, id: requestId }),
      })
      .then(() => this.failures.delete(forContainer))
      .catch((err: unknown) => this.noteFailure(forContainer, 'pull', err))
      .finally(() => {
        this.pulling.delete(image);
        void this.o.inventory
          .refresh()
          .catch(() => undefined)
          .then(() => this.requestReconcile());
      });
  }

  /** Names (config or left-config containers) whose last step failed and whose retry time is not yet. */
  private updateRetry(names: string[], updates: UpdatesPort): Map<string, string> {
    const now = this.now();
    const retry = new Map<string, string>();
    for (const name of names) {
      const at = updates.retryAt(name);
      if (at !== undefined && at > now) retry.set(name, new Date(at).toISOString());
    }
    return retry;
  }

  private backingOff(): Set<string> {
    const now = this.now();
    return new Set([...this.failures].filter(([, f]) => f.retryAt > now).map(([name]) => name));
  }

  /**
   * A recreate the agent did not live to finish (journaled: finished or undone as its step says,
   * replace-recovery.ts), and any container still moved aside under <name>-replaced-* or made
   * ahead under <name>-next-* that no journal speaks of: the old one is put back unless its
   * replacement runs (settleAside).
   */
  private async settleRecreates(): Promise<void> {
    const entry = this.recreateJournal.read();
    const pending: Array<{ name: string; aside: string; entry?: ReplaceEntry }> = [
      ...(entry ? [{ name: entry.container, aside: entry.aside, entry }] : []),
      ...(await leftAside(this.api)),
    ];
    const seen = new Set<string>();
    let unsettled = false;
    for (const { name, aside, entry: journaled } of pending) {
      if (seen.has(aside)) continue;
      seen.add(aside);
      // A settle that failed is tried again at its retry time, like any step. An update in
      // flight owns its <name>-next-* (made before its stop): settled after it, not under it.
      if (this.backingOff().has(name) || (!journaled && this.o.updates().busy.has(name))) {
        unsettled = true;
        continue;
      }
      try {
        const outcome = journaled
          ? SETTLED[await this.settleJournaled(journaled)]
          : await settleAside(this.api, name, aside);
        if (this.recoverFailed.delete(name)) this.failures.delete(name);
        if (outcome !== 'nothing') {
          this.o.logger.warn('settled a recreate interrupted by a restart', { container: name, aside, outcome });
          this.o.bus.emit('container.recovered', { name, aside, outcome });
        }
      } catch (err) {
        // The loop leaves this container alone while it backs off (its failure is in state).
        this.recoverFailed.add(name);
        this.noteFailure(name, 'recover', err);
        unsettled = true;
      }
    }
    if (unsettled) return;
    if (entry) this.recreateJournal.clear();
    this.recreateSettled = true;
  }

  /** One journaled recreate; an old container someone removed meanwhile leaves the loop to create it anew. */
  private async settleJournaled(entry: ReplaceEntry): Promise<keyof typeof SETTLED> {
    try {
      return await settleReplacement(this.api, entry);
    } catch (err) {
      if (!(err instanceof AgentError) || err.code !== 'recovery_failed') throw err;
      const fields = { container: entry.container, error: toErrorInfo(err) };
      this.o.logger.warn('a recreate interrupted by a restart lost its old container', fields);
      return 'untouched';
    }
  }

  /** A step for a container failed: an event, its error in state, and a retry with backoff. */
  noteFailure(name: string, action: string, err: unknown): void {
    const info = toErrorInfo(err, `${action}_failed`);
    const previous = this.failures.get(name);
    const backoff =
      previous?.backoff ??
      new Backoff({
        initialMs: this.o.config.reconcile.retry.initial * 1000,
        maxMs: this.o.config.reconcile.retry.max * 1000,
      });
    const delay = backoff.next();
    const error = { ...info, at: new Date().toISOString() };
    this.failures.set(name, { backoff, retryAt: this.now() + delay, error });
    this.o.logger.warn('container step failed; will retry', { container: name, action, error: info, retryInMs: delay });
    this.o.bus.emit('container.failed', { name, action, error: info, retryInMs: delay });
    clearTimeout(this.retryTimer);
    const next = Math.min(...[...this.failures.values()].map((f) => f.retryAt)) - this.now();
    this.retryTimer = setTimeout(() => this.requestReconcile(), Math.max(0, next) + 10);
  }

  private publishDesiredInfo(info: { appliedAt?: string; version?: string | number }): void {
    this.o.store.update('desired', (d) => ({
      appliedAt: info.appliedAt ?? null,
      ...(info.version !== undefined ? { version: info.version } : {}),
      ...(d.rejected ? { rejected: d.rejected } : {}),
    }));
  }

  private publishState(verdicts: Map<string, ContainerVerdict>): void {
    const devices = this.o.store.get().devices;
    const containers = this.desiredContainers().map((want): ContainerState => {
      const have = this.observed.find((o) => o.name === want.name);
      const resolved = resolveDeviceMappings(want.spec, devices, this.o.config.devices);
      const verdict = verdicts.get(want.name) ?? {
        inSync: false,
        reason: this.o.engine.available ? 'not reconciled yet' : 'Docker engine unavailable',
      };
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
