import { join } from 'node:path';
import type { AgentConfig } from '../config/types.js';
import { Backoff } from '../core/backoff.js';
import { AgentError, toErrorInfo } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import type { Logger } from '../core/logger.js';
import { DockerodeEngine } from '../docker/dockerode-engine.js';
import type { Engine } from '../docker/engine.js';
import type { DockerEngineLink, EngineEvent } from '../docker/engine-link.js';
import type { ImageInventory } from '../images/image-inventory.js';
import { parseImageReference } from '../core/image-reference.js';
import type { ImagePuller } from '../images/image-puller.js';
import type { DesiredMessage } from '../mqtt/topics.js';
import { reasonOf } from '../security/unauthorized.js';
import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';
import type { ContainerState } from '../state/types.js';
import { ContainerExecutor } from './container-executor.js';
import { observeContainers, type Observation } from './container-observer.js';
import {
  planContainers,
  type ContainerVerdict,
  type DesiredContainer,
  type GatedReplace,
  type PlanGate,
  type Step,
} from './container-plan.js';
import { LABELS } from './container-spec.js';
import { DesiredStore, effectiveDesired, mergeDesired, parseDesired, type DesiredRecord } from './desired-state.js';
import { DeviceSync } from './device-sync.js';
import { resolveDeviceMappings } from './device-mappings.js';
import { HoldStore } from './hold-store.js';
import { RecreateJournal } from './recreate-journal.js';
import type { ReplaceEntry } from './replace-journal.js';
import { leftAside, settleAside, settleReplacement } from './replace-recovery.js';
import { StableNodes } from './stable-nodes.js';
import { UpdateIntents, type ReplaceJob, type ReplaceTarget } from './update-intents.js';
import type { UpdateOutcome, UpdateResult } from '../state/types.js';

/**
 * What the containers loop needs of update/ (policy, history, the replacement itself): the loop
 * decides when an update runs and runs it in its turn; update/ says how.
 */
export interface UpdatesPort {
  readonly history: { rolledBack: ReadonlyMap<string, { image: string; imageId?: string; reason: string }> };
  /** When a container's failed update may be begun again (ms since the epoch), if it backs off. */
  retryAt(container: string): number | undefined;
  /** The maintenance window and the inhibit lock now. */
  gate(): PlanGate;
  /** How long the inhibit lock may hold a swap back (update.lockMaxWait), in ms. */
  readonly lockMaxWaitMs: number;
  /** Whether the target must be pulled before the swap. */
  needsPull(job: ReplaceJob): Promise<boolean>;
  /** The update's pull, run in the background (the old container runs on); fails as the update. */
  pull(job: ReplaceJob, from: string): Promise<void>;
  /** The journaled replacement with verification and rollback, in the loop's turn. */
  replace(job: ReplaceJob, target: ReplaceTarget): Promise<UpdateOutcome>;
  /** State says what a held-back update waits for. */
  noteWaiting(job: ReplaceJob, from: string, wait: { waitingFor: 'window' | 'lock'; nextWindow?: string | null }): void;
  /** An update the inhibit lock held back too long: reported (update_locked) and backed off; throws it. */
  lockedTooLong(job: ReplaceJob, from: string): never;
  /** A command's target the container runs already. */
  upToDate(job: ReplaceJob, from: string): Promise<UpdateOutcome>;
  /** A failed update's error, with when it is tried again. */
  retryMessage(container: string, err: unknown): Error;
  /** The agent stops: a replacement in the loop's turn ends now (recovery settles it at the next start). */
  cancel(): void;
}

export interface ContainersModuleOptions {
  config: Pick<AgentConfig, 'containers' | 'images' | 'devices' | 'reconcile' | 'state' | 'snapshots'>;
  /** update/: policy, history and the replacement the loop runs for an update. */
  updates: UpdatesPort;
  /** The queue the loop runs in (app.ts shares it with update recovery); by default its own. */
  queue?: SerialQueue;
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
  /** Updates asked of the loop (commands, the loop's own) and the outcome each waits for. */
  private readonly intents = new UpdateIntents();
  /** Containers whose update pulls in the background: the swap comes on a later pass. */
  private readonly preparing = new Set<string>();
  /** The container being replaced in the loop's turn now, if one is (a stop by command waits for it). */
  private replacing: string | undefined;
  /** Since when the inhibit lock holds an update back (update.lockMaxWait). */
  private lockSince: number | undefined;
  private gateTimer: NodeJS.Timeout | undefined;
  /** By container: a reconcile at its failed update's retry time (update.retry). */
  private readonly updateRetryTimers = new Map<string, NodeJS.Timeout>();
  private readonly recoverFailed = new Set<string>();
  private readonly now: () => number;
  readonly executor: ContainerExecutor;
  /** The Engine port every change of the loop goes through. */
  readonly api: Engine;
  private readonly stableNodes: StableNodes;
  readonly deviceSync: DeviceSync;
  private observed: Observation[] = [];
  private readonly queue: SerialQueue;
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
    this.queue = o.queue ?? new SerialQueue();
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
      replace: (step) => this.replaceStep(step),
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
    clearTimeout(this.gateTimer);
    for (const timer of this.updateRetryTimers.values()) clearTimeout(timer);
    this.updateRetryTimers.clear();
    this.intents.abandon();
    // Not a verification of up to update.healthTimeout before the agent may stop: the swap in
    // flight is undone by recovery at the next start, as after a crash.
    this.o.updates.cancel();
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
      if (admitted) accept = () => admitted.accept();
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
    // A swap the agent did not live to finish is settled before: update recovery runs in this
    // queue (app.ts), queued at start and on docker.connected before any reconcile.
    if (!this.recreateSettled) await this.settleRecreates();
    for (let pass = 0; pass < MAX_PASSES; pass += 1) {
      if (this.stopped) return;
      this.observed = await observeContainers(this.api);
      for (const id of this.orphansStopped) if (!this.observed.some((o) => o.id === id)) this.orphansStopped.delete(id);
      // A command's image is planned before it is pinned (the pin waits for the journal).
      const waited = new Map(this.intents.waited().map((j) => [j.container, j.image]));
      const desired = this.desiredContainers().map((d) =>
        waited.has(d.name) ? { ...d, image: waited.get(d.name)! } : d,
      );
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
      const updates = this.o.updates;
      const gate = updates.gate();
      const asked = new Set(this.intents.waited().map((j) => j.container));
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
        preparing: this.preparing,
        updateGate: gate,
        forced: this.intents.forced(),
        asked,
        rolledBack: updates.history.rolledBack,
        updateRetry: this.updateRetry(desired.map((d) => d.name)),
        startNow: this.startNow,
        orphansStopped: this.orphansStopped,
      });
      // In sync once its retry time has passed: whatever failed came right, the backoff starts over.
      for (const [name, verdict] of plan.verdicts) {
        if (verdict.inSync && (this.failures.get(name)?.retryAt ?? Infinity) <= this.now()) this.failures.delete(name);
      }
      this.publishState(plan.verdicts);
      await this.answerAsked(plan.steps, idOf);
      this.holdForGates(plan.gated);
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
          if (step.action !== 'pull' && step.action !== 'replace') this.failures.delete(step.name);
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
   * Runs a command's work in the loop's turn. An update of the container runs in the loop's turn
   * too (its swap and verification), so a stop or a restart never hits the new container in the
   * middle and has the update blame its image: it is held until the update ends, then done on
   * the container that stands. It waits at most UPDATE_WAIT_MS for an update of its container,
   * then refuses with update_in_progress, having changed nothing.
   */
  private async afterUpdate<T>(name: string, what: string, fn: () => Promise<T>): Promise<T> {
    let givenUp = false;
    const turn = this.serially(async () => (givenUp ? undefined : { value: await fn() }));
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<'waited'>((resolve) => (timer = setTimeout(() => resolve('waited'), UPDATE_WAIT_MS)));
      const outcome = await Promise.race([turn, waited]).finally(() => clearTimeout(timer));
      if (outcome !== 'waited') return outcome!.value;
      // Still queued: refused only when it is an update of this very container that holds it.
      if (this.replacing === name) {
        givenUp = true;
        const why = `${name} is still being updated after ${UPDATE_WAIT_MS / 1000} s`;
        throw new AgentError(
          'update_in_progress',
          `${why}; the ${what} was not done, ask again when the update has ended`,
        );
      }
    }
  }

  // --- updates ------------------------------------------------------------------------

  /**
   * A command's update (update, rollback, restore): written as an intent the loop plans with,
   * answered with the loop's outcome (done, rolledback, up_to_date, or the error). Outside the
   * maintenance window and not forced, the image is pinned and the answer is `scheduled` at once
   * (a command that waited would hold a slot of the long lane for hours); the update runs when
   * the window opens, its outcome as update.* events with the request id.
   */
  async requestUpdate(job: ReplaceJob): Promise<UpdateResult> {
    this.specOf(job.container);
    const gate = this.o.updates.gate();
    if (!job.force && !gate.windowOpen) return this.scheduleUpdate(job, gate.nextWindow);
    return this.updateNow(job);
  }

  /** An update that runs now (forced, or in the window): the loop's outcome, never `scheduled`. */
  async updateNow(job: ReplaceJob): Promise<UpdateOutcome> {
    this.specOf(job.container);
    return this.intents.write(job, () => this.requestReconcile());
  }

  private async scheduleUpdate(job: ReplaceJob, nextWindow: string | null): Promise<UpdateResult> {
    const answer: UpdateResult = {
      status: 'scheduled',
      container: job.container,
      from: null,
      to: job.image,
      at: new Date().toISOString(),
      nextWindow,
    };
    // One waiting update per container: the same request again is the same answer, another image
    // is refused (a flood of update requests must not grow a queue of waiting updates).
    const waiting = this.intents.scheduledImage(job.container);
    if (waiting === job.image) return answer;
    if (waiting !== undefined) {
      const when = nextWindow ?? 'never, by update.window';
      throw new AgentError(
        'update_scheduled',
        `${job.container} already waits for the maintenance window to update to ${waiting} (opens ${when}); use force to update now`,
      );
    }
    // Pinned at once: the operator's intent survives a restart of the agent (the loop updates to
    // it in the window).
    await job.pin?.();
    this.intents.schedule(job);
    this.requestReconcile();
    return answer;
  }

  /**
   * The update check saw a container's tag move in the registry: the update's pull of the tag
   * begins in the background (update.started; a failure is update.failed, backed off), after
   * which the moved tag is planned as an update like any other. Not while the container's
   * update backs off, nor while one of it pulls.
   */
  refreshImage(name: string, image: string): void {
    this.specOf(name);
    if (!this.running || this.preparing.has(name) || (this.o.updates.retryAt(name) ?? 0) > this.now()) return;
    const job = this.intents.check(name, image);
    if (!job) return;
    this.prepareUpdate(job, this.observed.find((o) => o.name === name)?.image ?? image);
  }

  /** A `replace` step: the update's pull in the background when one is needed, else the swap, in this turn. */
  private async replaceStep(step: Extract<Step, { action: 'replace' }>): Promise<void> {
    const updates = this.o.updates;
    const job = this.intents.jobFor(step.name, step.image);
    const from = this.observed.find((o) => o.name === step.name)?.image ?? step.image;
    try {
      if (await updates.needsPull(job)) {
        this.prepareUpdate(job, from);
        return;
      }
      this.replacing = step.name;
      const result = await updates.replace(job, { executor: this.executor, spec: this.specOf(step.name) });
      this.intents.settle(step.name, { result });
    } catch (err) {
      this.updateFailed(job, err);
    } finally {
      this.replacing = undefined;
    }
  }

  /** The update's pull, outside the loop's turn (a 20 GB image must not hold the loop); then a new pass. */
  private prepareUpdate(job: ReplaceJob, from: string): void {
    this.preparing.add(job.container);
    void this.o.updates
      .pull(job, from)
      .catch((err: unknown) => this.updateFailed(job, err))
      .finally(() => {
        this.preparing.delete(job.container);
        void this.o.inventory
          .refresh()
          .catch(() => undefined)
          .then(() => this.requestReconcile());
      });
  }

  /**
   * An update failed (update/ reported it as update.failed and backed the container off): the
   * command that waits gets the error; the loop's own update is a failure of the container's,
   * tried again at its retry time.
   */
  private updateFailed(job: ReplaceJob, err: unknown): void {
    const name = job.container;
    const kind = this.intents.settle(name, { error: err });
    const retryAt = this.o.updates.retryAt(name);
    if (retryAt !== undefined) {
      // The loop may be backing off longer itself: it is asked again at this retry time.
      clearTimeout(this.updateRetryTimers.get(name));
      const timer = setTimeout(
        () => {
          this.updateRetryTimers.delete(name);
          this.requestReconcile();
        },
        Math.max(0, retryAt - this.now()) + 10,
      );
      timer.unref?.();
      this.updateRetryTimers.set(name, timer);
    }
    // Stopped in the middle: the pin stands and the next start takes it up.
    if (kind === 'waited' || toErrorInfo(err).code === 'update_aborted') return;
    this.noteFailure(name, 'update', this.o.updates.retryMessage(name, err));
  }

  /**
   * The commands' updates the plan has no replacement for: one whose container runs its image
   * already is answered up_to_date, one whose container does not exist yet not_found (its image
   * pinned: the container is created with it).
   */
  private async answerAsked(steps: Step[], idOf: ReadonlyMap<string, string>): Promise<void> {
    for (const job of this.intents.asked()) {
      const name = job.container;
      if (steps.some((s) => s.name === name && s.action === 'replace') || this.preparing.has(name)) continue;
      const have = this.observed.find((o) => o.name === name);
      try {
        if (!have) {
          await job.pin?.();
          const message = `container ${name} does not exist yet; it will be created with ${job.image}`;
          throw new AgentError('not_found', message);
        }
        // The loop plans no step for a container held stopped or disabled: a command would wait forever.
        const want = this.desiredContainers().find((d) => d.name === name);
        if (this.holds.names.has(name) || want?.enabled === false) {
          const why = want?.enabled === false ? 'disabled by the desired state' : 'stopped by command';
          const message = `${name} is ${why}, so it was not updated; start it, then ask again`;
          throw new AgentError('container_stopped', message);
        }
        const id = idOf.get(job.image);
        if (have.image !== job.image || (id !== undefined && have.runImage === have.image && have.imageId !== id))
          continue;
        this.intents.settle(name, { result: await this.o.updates.upToDate(job, have.image) });
      } catch (err) {
        this.intents.settle(name, { error: err });
      }
    }
  }

  /**
   * Updates the window or the inhibit lock hold back: state says so; the loop plans again when
   * the window opens, and every second while the lock is there, giving up after
   * update.lockMaxWait (update_locked, tried again later).
   */
  private holdForGates(gated: GatedReplace[]): void {
    clearTimeout(this.gateTimer);
    const locked = gated.filter((g) => g.waitingFor === 'lock');
    if (locked.length === 0) this.lockSince = undefined;
    else this.lockSince ??= this.now();
    const fromOf = (name: string, image: string) => this.observed.find((o) => o.name === name)?.image ?? image;
    if (this.lockSince !== undefined && this.now() - this.lockSince > this.o.updates.lockMaxWaitMs) {
      this.lockSince = undefined;
      for (const held of locked) {
        const job = this.intents.jobFor(held.name, held.image);
        try {
          this.o.updates.lockedTooLong(job, fromOf(held.name, held.image));
        } catch (err) {
          this.updateFailed(job, err);
        }
      }
      return;
    }
    const first = gated[0];
    if (first) {
      const { waitingFor, nextWindow } = first;
      const job = this.intents.jobFor(first.name, first.image);
      this.o.updates.noteWaiting(job, fromOf(first.name, first.image), {
        waitingFor,
        ...(nextWindow !== undefined ? { nextWindow } : {}),
      });
    }
    let windowAt = Infinity;
    for (const held of gated) {
      if (held.waitingFor === 'window' && held.nextWindow) {
        windowAt = Math.min(windowAt, new Date(held.nextWindow).getTime() + 100);
      }
    }
    const later = (fn: () => void, ms: number) => {
      this.gateTimer = setTimeout(fn, Math.min(Math.max(1000, ms), 2 ** 31 - 1));
      this.gateTimer.unref?.();
    };
    if (locked.length === 0) {
      if (windowAt !== Infinity) later(() => this.requestReconcile(), windowAt - Date.now());
      return;
    }
    // The lock may hold for hours (update.lockMaxWait, up to a day): only the lock file is looked
    // at each second; the loop passes again (the engine's containers and images) when it goes,
    // when it has held too long, or when a window opens.
    const lockDeadline = this.lockSince! + this.o.updates.lockMaxWaitMs;
    const poll = () => {
      const stillHeld = this.o.updates.gate().locked && this.now() <= lockDeadline && Date.now() < windowAt;
      if (stillHeld) later(poll, 1000);
      else this.requestReconcile();
    };
    later(poll, 1000);
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
  private updateRetry(names: string[]): Map<string, string> {
    const updates = this.o.updates;
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
      // A settle that failed is tried again at its retry time, like any step. (An update's own
      // <name>-next-* is never seen here mid-update: the replacement and this scan share the queue.)
      if (this.backingOff().has(name)) {
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
