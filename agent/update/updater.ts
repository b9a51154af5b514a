import type { AgentConfig } from '../config/types.js';
import { stamp } from '../containers/container-executor.js';
import type { ReplaceJob, ReplaceTarget } from '../containers/update-intents.js';
import { findManagedContainer } from '../containers/container-observer.js';
import { LABELS } from '../containers/container-spec.js';
import { settleReplacement } from '../containers/replace-recovery.js';
import { ReplaceTransaction, type DowntimeParts } from '../containers/replace-transaction.js';
import type { DeviceMapping } from '../containers/device-mappings.js';
import { DockerodeEngine } from '../docker/dockerode-engine.js';
import type { Engine } from '../docker/engine.js';
import { Backoff } from '../core/backoff.js';
import { AgentError, toErrorInfo } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import type { Logger } from '../core/logger.js';
import type { DockerEngineLink } from '../docker/engine-link.js';
import { parseImageReference } from '../core/image-reference.js';
import type { ImagePuller } from '../images/image-puller.js';
import type { AgentEvents, EventBus, EventType } from '../state/event-bus.js';
import type { UpdateBaseFields } from '../state/events.js';
import type { StateStore } from '../state/state-store.js';
import type { UpdateOutcome, UpdateResult, UpdateState } from '../state/types.js';
import type { SavedWork } from './saved-work.js';
import { updateGate, type GateWait, type UpdateGate } from './update-gates.js';
export type { UpdateGate } from './update-gates.js';
import { UpdateHistory } from './update-history.js';
import { UpdateJournal, type JournalEntry, type SwapStep } from './update-journal.js';
import { UpdateWindow } from './update-window.js';
import { verifyContainer } from './verify-container.js';

export interface UpdaterOptions {
  config: Pick<AgentConfig, 'update' | 'state'>;
  engine: DockerEngineLink;
  /** What the flow asks of the engine (the Engine port); by default dockerode over `engine`. */
  api?: Engine;
  puller: ImagePuller;
  store: StateStore;
  bus: EventBus;
  logger: Logger;
  /** Saves a changed container's work as a snapshot (or finds it saved already) before it is replaced. */
  work: () => { saveWork(name: string, containerId: string, why: string): Promise<SavedWork | undefined> };
  /**
   * The containers loop's queue (app.ts gives the one the loop runs in): recovery of an
   * interrupted swap never runs beside a step of the loop. By default a queue of its own.
   */
  queue?: SerialQueue;
  /** The clock for the retry backoff (tests may inject one). */
  now?: () => number;
  /** Fault injection for the crash tests: called right after each journal write. */
  onStep?: (step: SwapStep) => void;
}

/** An update the loop runs (containers/update-intents.ts). */
export type UpdateJob = ReplaceJob;

/**
 * Update policy and the update's replacement: what the gates say now (window, inhibit lock),
 * the pull of a new image (in the background, while the old container runs), the journaled swap
 * with verification and rollback, history and records, retry backoff. It owns no queue and
 * starts nothing by itself: the containers loop plans an update as a `replace` step and runs it
 * in its own turn (containers-module.ts), so one engine changes containers. Every swap step is
 * journaled before it is taken, so an agent killed at any point finishes or undoes it at its
 * next start.
 */
export class Updater {
  readonly name = 'update';
  readonly history: UpdateHistory;
  private readonly journal: UpdateJournal;
  private readonly window: UpdateWindow;
  private readonly abort = new AbortController();
  private readonly queue: SerialQueue;
  private recovered: Promise<void>;
  private markRecovered: () => void = () => undefined;
  private unsubscribeBus: (() => void) | undefined;
  /** Updates that failed, by container: not begun again by the loop before retryAt (update.retry). */
  private readonly retries = new Map<string, Retry>();
  /** A recovery that failed while the engine stays up is tried again with backoff (update.retry). */
  private recoverBackoff: Backoff | undefined;
  private recoverTimer: NodeJS.Timeout | undefined;
  private recoverNow: () => void = () => undefined;
  private readonly now: () => number;
  private readonly api: Engine;

  constructor(private readonly o: UpdaterOptions) {
    this.api = o.api ?? new DockerodeEngine(() => o.engine.required());
    this.history = new UpdateHistory(o.config.state.dir);
    this.journal = new UpdateJournal(o.config.state.dir);
    this.window = new UpdateWindow(o.config.update.window);
    this.queue = o.queue ?? new SerialQueue();
    this.recovered = new Promise((resolve) => (this.markRecovered = resolve));
    this.now = o.now ?? Date.now;
  }

  async start(): Promise<void> {
    this.history.load();
    const recover = () => {
      clearTimeout(this.recoverTimer);
      this.recoverTimer = undefined;
      void this.queue.run(() => this.recover()).finally(() => this.markRecovered());
    };
    this.recoverNow = recover;
    this.unsubscribeBus = this.o.bus.subscribe((event) => {
      // Whenever the engine comes back, not only at start: a swap cut short by an engine that
      // died under it (journal left, old container aside) is settled as soon as it can be.
      if (event.type === 'docker.connected') recover();
      if (event.type !== 'desired.changed') return;
      // The fleet naming a container anew is asking again: a target that rolled back may be retried.
      const named = event.containers;
      if (named.some((n) => this.history.rolledBack.delete(n))) void this.history.save().catch(() => undefined);
    });
    if (this.o.engine.available) recover();
  }

  async stop(): Promise<void> {
    this.unsubscribeBus?.();
    clearTimeout(this.recoverTimer);
    this.recoverNow = () => undefined;
    this.abort.abort();
    this.window.destroy();
    // A swap in flight is undone by recovery at the next start if it cannot finish now.
    await this.queue.idle();
  }

  /** The agent stops: a replacement in flight ends now (update_aborted); recovery settles it at the next start. */
  cancel(): void {
    this.abort.abort();
  }

  /** Resolves once a journal left by a previous run has been finished or undone (or tried once). */
  ready(): Promise<void> {
    return this.recovered;
  }

  /** The window and the inhibit lock as they are now (update-gates.ts). */
  gate(at = new Date()): UpdateGate {
    return updateGate(this.o.config.update, this.window, at);
  }

  /** update.lockMaxWait in ms: how long the inhibit lock may hold a swap back before it fails. */
  get lockMaxWaitMs(): number {
    return this.o.config.update.lockMaxWait * 1000;
  }

  /**
   * An operator asked for this container's image anew (update with force, rollback, restore): a
   * target that rolled back may be tried again. The commands' way in, instead of the history itself.
   */
  askedAnew(container: string): void {
    this.history.rolledBack.delete(container);
  }

  /** What the container ran before its last update by this agent, if it was updated. */
  previousImage(container: string): { image: string; imageId: string } | undefined {
    return this.history.previous.get(container);
  }

  /** Image ids a rollback needs: prune keeps them. */
  protectedImages(): Set<string> {
    return new Set([...this.history.previous.values()].map((p) => p.imageId));
  }

  /**
   * A name for the image a container ran before its last update: its old reference when that
   * still names it, else a tag made for it (the old tag may have moved to the new image).
   */
  async previousReference(container: string, previous: { image: string; imageId: string }): Promise<string> {
    if ((await imageId(this.api, previous.image)) === previous.imageId) return previous.image;
    const ref = parseImageReference(previous.image);
    try {
      await this.api.tagImage(previous.imageId, ref.familiarRepository, `${container}-previous`);
    } catch (err) {
      throw new AgentError(
        'no_previous',
        `the image ${container} ran before (${previous.imageId.slice(7, 19)}) is no longer on this robot: ${(err as Error).message}`,
      );
    }
    return `${ref.familiarRepository}:${container}-previous`;
  }

  /**
   * When a container's update may be begun again by the loop (ms since the epoch), if it backs
   * off: a failed update doubles its delay up to update.retry.max, reset only by a success. The
   * loop's planner turns the container's update away quietly until then; a command is not.
   */
  retryAt(container: string): number | undefined {
    return this.retries.get(container)?.retryAt;
  }

  private backOff(container: string): number {
    const { initial, max } = this.o.config.update.retry;
    const retry: Retry = this.retries.get(container) ?? {
      backoff: new Backoff({ initialMs: initial * 1000, maxMs: max * 1000 }),
      retryAt: 0,
    };
    const delay = retry.backoff.next();
    retry.retryAt = this.now() + delay;
    this.retries.set(container, retry);
    return delay;
  }

  private succeeded(container: string): void {
    this.retries.delete(container);
  }

  /** The message of a failure with when the loop tries again, for container.failed. */
  retryMessage(container: string, err: unknown): AgentError {
    const delay = Math.max(0, (this.retries.get(container)?.retryAt ?? 0) - this.now());
    const info = toErrorInfo(err, 'update_failed');
    const message = `${info.message}; the update is tried again in about ${Math.ceil(delay / 1000)} s`;
    return new AgentError(info.code, message, { cause: err });
  }

  /**
   * Whether the target must be pulled first (absent; a tag the check saw move; images.verify
   * covers it and no image verified for that name is here). The loop then runs `pull` in the
   * background and the swap on a later pass: it never waits for a 20 GB pull in its turn.
   */
  async needsPull(job: UpdateJob): Promise<boolean> {
    const target = job.image;
    if (job.reason === 'check' && !job.pulled) return true;
    if (!(await imageId(this.api, target))) return true;
    return this.verifies(job) && (await this.o.puller.mustVerify(target));
  }

  private verifies(job: UpdateJob): boolean {
    // images.verify: a covered image is pulled (which checks its signature first) unless an image
    // verified for that name is here (a copy by that name proves nothing), and runs by the digest
    // verified. A rollback goes back to what ran, and a restore of this robot's own snapshot runs
    // what it committed itself.
    return job.reason !== 'rollback' && !job.ownImage && (this.o.puller.covers?.(job.image) ?? false);
  }

  /**
   * The update's pull, outside the loop's turn (the old container runs on): status `pulling`,
   * update.started and update.progress. A failure is the update's (update.failed, backoff).
   */
  async pull(job: UpdateJob, from: string): Promise<void> {
    const base = this.base(job, from);
    this.announce(job, base);
    try {
      await this.pullTarget(job, base);
      job.pulled = true;
    } catch (err) {
      this.backOff(job.container);
      this.fail(base, err, job.requestId);
    }
  }

  private async pullTarget(job: UpdateJob, base: UpdateBaseFields): Promise<void> {
    const { container: name, image: target, requestId } = job;
    await this.o.puller.pull(parseImageReference(target), {
      requestId: requestId ?? `update-${name}-${Date.now()}`,
      progress: (f) => {
        this.setState({ progress: { current: Number(f.current ?? 0), total: Number(f.total ?? 0) } });
        this.emit('update.progress', { ...base, ...f }, requestId);
      },
    });
  }

  private base(job: UpdateJob, from: string): UpdateBaseFields & { from: string } {
    return { container: job.container, from, to: job.image, ...(job.requestId ? { requestId: job.requestId } : {}) };
  }

  private announce(job: UpdateJob, base: UpdateBaseFields): void {
    if (job.announced) return;
    job.announced = true;
    this.setState({ status: 'pulling', ...base, progress: null });
    this.emit('update.started', { ...base, reason: job.reason }, job.requestId);
  }

  /** The loop holds the swap for a gate: state says what it waits for (and when the window opens). */
  noteWaiting(job: UpdateJob, from: string, wait: GateWait): void {
    // Begun as before: update.started first, then the wait (the pull, if any, is done or runs).
    this.announce(job, this.base(job, from));
    const current = this.o.store.get().update;
    const same =
      current.status === 'waiting' &&
      current.container === job.container &&
      current.to === job.image &&
      current.waitingFor === wait.waitingFor &&
      (current.nextWindow ?? null) === (wait.nextWindow ?? null);
    if (same) return;
    this.setState({ status: 'waiting', ...this.base(job, from), progress: null, nextWindow: undefined, ...wait });
  }

  /**
   * The loop gave up waiting for a gate (the inhibit lock held the swap back for over
   * update.lockMaxWait): the update fails as any other (update.failed, backoff), nothing changed.
   */
  lockedTooLong(job: UpdateJob, from: string): never {
    const { lockFile, lockMaxWait } = this.o.config.update;
    const err = new AgentError(
      'update_locked',
      `${lockFile} has held the update back for over ${lockMaxWait} s (the robot's software is driving or teaching?); it will be tried again`,
    );
    this.backOff(job.container);
    this.fail(this.base(job, from), err, job.requestId);
  }

  /** A command's target that the container runs already: pinned, and answered up_to_date. */
  async upToDate(job: UpdateJob, from: string): Promise<UpdateOutcome> {
    await job.pin?.();
    this.succeeded(job.container);
    return this.finish(
      { status: 'up_to_date', container: job.container, from, to: job.image, at: now() },
      job.requestId,
    );
  }

  /**
   * The replacement, in the containers loop's turn (its gates passed: the planner emitted the
   * step): journal, pin, save the work, swap, verify, and either keep the new container or put
   * the old one back. A failure backs the container's next try off (update.retry).
   */
  async replace(job: UpdateJob, target: ReplaceTarget): Promise<UpdateOutcome> {
    try {
      const result = await this.flow(job, target);
      if (result.status === 'done' || result.status === 'up_to_date') this.succeeded(job.container);
      return result;
    } catch (err) {
      this.backOff(job.container);
      throw err;
    }
  }

  private async flow(job: UpdateJob, target: ReplaceTarget): Promise<UpdateOutcome> {
    const { container: name, image: targetImage, requestId } = job;
    const old = await findManagedContainer(this.api, name);
    if (!old) {
      await job.pin?.();
      throw new AgentError('not_found', `container ${name} does not exist yet; it will be created with ${targetImage}`);
    }
    const from = old.Labels[LABELS.image] ?? old.Image;
    const base = this.base(job, from);
    let tx: ReplaceTransaction | undefined;
    let saved: SavedWork | undefined;
    this.announce(job, base);
    try {
      const verify = this.verifies(job);
      // Pulled in the background before this step as a rule; here only when it had to be again.
      if (await this.needsPull(job)) await this.pullTarget(job, base);
      job.runImage = verify ? await this.o.puller.runReference(targetImage) : targetImage;
      const targetId = await imageId(this.api, job.runImage);
      if (targetId === old.ImageID && from === targetImage) await job.pin?.();
      if (targetId === old.ImageID && from === targetImage)
        return this.finish({ status: 'up_to_date', container: name, from, to: targetImage, at: now() }, requestId);
      if (this.abort.signal.aborted)
        throw new AgentError('update_aborted', 'the agent stopped before the swap; the update will run again');
      // The journal first: a state.dir that cannot take it refuses the update before anything
      // changes (a swap that could not be journaled could not be undone after a crash).
      tx = this.begin(job, { id: old.Id, image: from, imageId: old.ImageID });
      await job.pin?.();
      // Students' work in the old container survives as a snapshot (the container itself is kept
      // until the new one is proven, and removed after); unchanged, nothing is committed.
      const why = job.reason === 'restore' ? 'a restore' : job.reason === 'rollback' ? 'a rollback' : 'an update';
      saved = await this.o.work().saveWork(name, old.Id, why);
    } catch (err) {
      tx?.clear();
      return this.fail(base, err, requestId);
    }
    return this.swap(job, tx, saved, target, base);
  }

  /** Journals the replacement's first step, or refuses with disk_full (nothing has changed yet). */
  private begin(job: UpdateJob, old: { id: string; image: string; imageId: string }): ReplaceTransaction {
    const entry: JournalEntry = {
      container: job.container,
      step: 'preparing',
      from: { image: old.image, imageId: old.imageId, containerId: old.id },
      to: { image: job.image },
      aside: `${job.container}-previous-${stamp()}`,
      ...(job.requestId ? { requestId: job.requestId } : {}),
      startedAt: now(),
    };
    const options = {
      engine: this.api,
      journal: this.journal,
      logger: this.o.logger,
      what: 'update',
      ...(this.o.onStep ? { onStep: this.o.onStep } : {}),
    };
    try {
      return ReplaceTransaction.begin(options, entry);
    } catch (err) {
      const info = toErrorInfo(err);
      if (info.code === 'enospc') {
        const message =
          `the agent's state directory (${this.o.config.state.dir}) is full, so the update of ${job.container} ` +
          'could not be journaled and was not begun; nothing was changed. Free some space there and ask again.';
        throw new AgentError('disk_full', message, { cause: err });
      }
      const message = `the update of ${job.container} could not be journaled (${info.message}); nothing was changed`;
      throw new AgentError('state_write_failed', message, { cause: err });
    }
  }

  /** The swap: the one replacement transaction, with this update's verification. */
  private async swap(
    job: UpdateJob,
    tx: ReplaceTransaction,
    saved: SavedWork | undefined,
    target: ReplaceTarget,
    base: UpdateBaseFields,
  ): Promise<UpdateOutcome> {
    const engine = this.api;
    const { executor, spec } = target;
    const name = job.container;
    const entry = tx.entry;
    const old = { id: entry.from.containerId, image: entry.from.image, imageId: entry.from.imageId };
    if (saved) entry.saved = { image: saved.image, imageId: saved.id };
    this.setState({ status: 'swapping', waitingFor: undefined, nextWindow: undefined, progress: null });
    let newImageId: string | undefined;
    let downtimeMs = 0;
    let downtimeParts: DowntimeParts | undefined;
    let mappings: DeviceMapping[] | undefined;
    let proof: { by: 'healthcheck' | 'stable'; probe: boolean } | undefined;
    try {
      await tx.run({
        prepare: async () => {
          mappings = await executor.prepareDevices(name);
        },
        stop: () => executor.stop(old.id, name),
        create: (temporary) => executor.create(name, job.image, job.runImage ?? job.image, mappings, temporary),
        start: (id) => executor.start(id, name),
        started: async (id, ms, parts) => {
          downtimeMs = ms;
          downtimeParts = parts;
          newImageId = (await engine.inspectContainer(id))?.Image;
        },
        verify: async (id) => {
          this.setState({ status: 'verifying' });
          proof = await verifyContainer({
            engine,
            containerId: id,
            name,
            stableSeconds: this.o.config.update.stableSeconds,
            healthTimeoutSeconds: this.o.config.update.healthTimeout,
            ...(spec.probe ? { probe: spec.probe } : {}),
            signal: this.abort.signal,
          });
        },
      });
    } catch (err) {
      // Past verification only the old container's removal is left, and recovery finishes that.
      if (tx.committed) throw err;
      // The agent is stopping: recovery undoes the swap at the next start.
      if ((err as AgentError).code === 'update_aborted') throw err;
      return this.rollBack(tx, err, newImageId, base);
    }
    // The way back is what ran: its saved work when it had some, else its image.
    this.history.previous.set(name, wayBack(entry));
    this.history.rolledBack.delete(name);
    await this.history.save();
    const parts = downtimeParts ? { downtimeParts } : {};
    const verified = { ...base, by: proof?.by, probe: proof?.probe, downtimeMs, ...parts };
    this.emit('update.verified', verified, job.requestId);
    return this.finish({ status: 'done', container: name, from: old.image, to: job.image, at: now() }, job.requestId);
  }

  /** Puts the old container back as it was and says why, with what the new one printed last. */
  private async rollBack(
    tx: ReplaceTransaction,
    cause: unknown,
    newImageId: string | undefined,
    base: UpdateBaseFields,
  ): Promise<UpdateOutcome> {
    const entry = tx.entry;
    const error = toErrorInfo(cause, 'update_failed');
    // What the new container said and how it ended, read before recovery removes it.
    const last = entry.newContainerId ? await lastWords(this.api, entry.newContainerId) : { exitCode: null, logs: [] };
    try {
      await tx.undo();
    } catch (err) {
      // The engine went away (or would not answer) mid-swap: the journal stays, and recovery
      // puts the old container back as soon as the engine is back (docker.connected).
      const why = toErrorInfo(err, 'rollback_failed');
      const message =
        `the new ${entry.container} failed (${error.message}) and the old one could not be put back yet ` +
        `(${why.message}); it will be as soon as the Docker engine answers again`;
      const pending = { code: 'rollback_pending', message };
      const { container, from, to } = { container: entry.container, from: entry.from.image, to: entry.to.image };
      this.o.logger.error('update failed and could not roll back yet', { container, error, cause: why });
      const lastResult: UpdateResult = { status: 'failed', container, from, to, at: now(), error: pending, ...last };
      this.setState({ status: 'failed', progress: null, lastResult });
      this.emit('update.failed', { ...base, error: pending, ...last }, entry.requestId);
      throw new AgentError(pending.code, pending.message, { cause: err });
    }
    this.history.rolledBack.set(entry.container, {
      image: entry.to.image,
      ...(newImageId ? { imageId: newImageId } : {}),
      reason: error.code,
      at: now(),
    });
    await this.history
      .save()
      .catch((err: unknown) => this.o.logger.warn('could not save the update history', { error: toErrorInfo(err) }));
    const exitCode = last.exitCode;
    this.o.logger.warn('update rolled back', { container: entry.container, to: entry.to.image, error, exitCode });
    this.emit('update.rolledback', { ...base, reason: error, ...last }, entry.requestId);
    const { container, from, to } = { container: entry.container, from: entry.from.image, to: entry.to.image };
    return this.finish({ status: 'rolledback', container, from, to, at: now(), error, ...last }, entry.requestId);
  }

  private async recover(): Promise<void> {
    const entry = this.journal.read();
    if (!entry) {
      this.recoverBackoff = undefined;
      return;
    }
    try {
      const outcome = await settleReplacement(this.api, entry);
      this.journal.clear();
      this.recoverBackoff = undefined;
      if (outcome === 'completed') {
        this.history.previous.set(entry.container, wayBack(entry));
        await this.history.save();
      }
      this.o.logger.warn('finished an update interrupted by a restart', {
        container: entry.container,
        step: entry.step,
        outcome,
      });
      this.emit(
        'update.recovered',
        { container: entry.container, from: entry.from.image, to: entry.to.image, step: entry.step, outcome },
        entry.requestId,
      );
      const status = outcome === 'completed' ? 'done' : outcome === 'rolledback' ? 'rolledback' : 'failed';
      const said = outcome === 'untouched' ? 'before anything was changed' : 'the old container was put back';
      const message = `the update stopped at step ${entry.step} (the agent or the Docker engine stopped); ${said}`;
      const error = { code: 'update_interrupted', message };
      const { container, from, to } = { container: entry.container, from: entry.from.image, to: entry.to.image };
      const lastResult: UpdateResult = { status, container, from, to, at: now() };
      if (outcome !== 'completed') lastResult.error = error;
      this.setState({ status, waitingFor: undefined, nextWindow: undefined, progress: null, lastResult });
    } catch (err) {
      // Kept, and tried again: at the next start, when the engine reconnects, and meanwhile with
      // backoff (an engine that stays up may have failed one call; a container it keeps must not
      // be left aside until the agent restarts). The containers loop must not act meanwhile.
      const { initial, max } = this.o.config.update.retry;
      this.recoverBackoff ??= new Backoff({ initialMs: initial * 1000, maxMs: max * 1000 });
      const delay = this.recoverBackoff.next();
      const fields = { container: entry.container, error: toErrorInfo(err), retryInMs: delay };
      this.o.logger.error('could not recover an interrupted update; will retry', fields);
      clearTimeout(this.recoverTimer);
      this.recoverTimer = setTimeout(() => {
        this.recoverTimer = undefined;
        // An engine that is away is waited for: docker.connected runs recovery when it is back.
        if (this.o.engine.available) this.recoverNow();
      }, delay);
      this.recoverTimer.unref();
    }
  }

  private fail(
    base: { container: string; from: string; to: string },
    err: unknown,
    requestId: string | undefined,
  ): never {
    const error = toErrorInfo(err, 'update_failed');
    this.setState({
      status: 'failed',
      waitingFor: undefined,
      nextWindow: undefined,
      progress: null,
      lastResult: { status: 'failed', ...base, at: now(), error },
    });
    this.emit('update.failed', { ...base, error }, requestId);
    throw err;
  }

  private finish(result: UpdateOutcome, requestId: string | undefined): UpdateOutcome {
    this.setState({
      status: result.status === 'up_to_date' ? 'idle' : result.status === 'done' ? 'done' : 'rolledback',
      waitingFor: undefined,
      nextWindow: undefined,
      progress: null,
      lastResult: result,
    });
    if (result.status === 'done')
      this.emit('update.done', { container: result.container, from: result.from, to: result.to }, requestId);
    return result;
  }

  private setState(patch: Partial<UpdateState>): void {
    this.o.store.update('update', (current) => {
      const next: Record<string, unknown> = { ...current, ...patch };
      for (const key of Object.keys(next)) if (next[key] === undefined) delete next[key];
      return next as unknown as UpdateState;
    });
  }

  private emit<K extends EventType>(type: K, fields: AgentEvents[K], requestId: string | undefined): void {
    this.o.bus.emit(type, { ...fields, ...(requestId ? { id: requestId } : {}) });
  }
}

async function imageId(engine: Engine, ref: string): Promise<string | undefined> {
  try {
    return (await engine.inspectImage(ref))?.Id;
  } catch {
    return undefined;
  }
}

/** What the events and state carry of a failed container's output: enough to see why, never a flood. */
export const LAST_WORDS = { lines: 20, bytes: 4096 } as const;

/**
 * How a new container ended (its exit code, null while it runs or when unknown) and the last
 * lines it printed, at most LAST_WORDS.lines and LAST_WORDS.bytes (the newest kept).
 */
async function lastWords(engine: Engine, id: string): Promise<{ exitCode: number | null; logs: string[] }> {
  try {
    const info = await engine.inspectContainer(id);
    if (!info) return { exitCode: null, logs: [] };
    const ended = !info.State.Running || ['exited', 'dead', 'restarting'].includes(info.State.Status);
    const exitCode = ended ? info.State.ExitCode : null;
    const read = { tail: LAST_WORDS.lines, tty: info.Config.Tty, limitBytes: 64 * 1024 };
    const lines = (await engine.lastLogLines(id, read).catch(() => ({ lines: [] }))).lines.filter(Boolean);
    return { exitCode, logs: boundLines(lines, LAST_WORDS.bytes) };
  } catch {
    return { exitCode: null, logs: [] };
  }
}

/** The newest lines whose UTF-8 total fits in maxBytes (a single longer line is cut to its end). */
export function boundLines(lines: string[], maxBytes: number): string[] {
  const kept: string[] = [];
  let used = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    let line = lines[i]!;
    let size = Buffer.byteLength(line) + 1;
    if (kept.length === 0 && size > maxBytes) {
      line = Buffer.from(line)
        .subarray(-(maxBytes - 1))
        .toString('utf8');
      size = Buffer.byteLength(line) + 1;
    }
    if (used + size > maxBytes) break;
    kept.unshift(line);
    used += size;
  }
  return kept;
}

/** Where a rollback goes: the saved work of the container that ran, else the image it ran. */
function wayBack(entry: JournalEntry): { image: string; imageId: string } {
  const ran = entry.saved ?? entry.from;
  return { image: ran.image, imageId: ran.imageId };
}

interface Retry {
  backoff: Backoff;
  retryAt: number;
}

function now(): string {
  return new Date().toISOString();
}
