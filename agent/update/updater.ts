import type { AgentConfig, ContainerSpec } from '../config/types.js';
import type { DesiredContainer } from '../containers/container-plan.js';
import type { ContainerExecutor } from '../containers/container-executor.js';
import { stamp } from '../containers/container-executor.js';
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
import { parseImageReference } from '../images/image-reference.js';
import type { ImagePuller } from '../images/image-puller.js';
import type { SavedWork } from '../snapshot/snapshotter.js';
import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';
import type { UpdateResult, UpdateState } from '../state/types.js';
import { waitForGates } from './update-gates.js';
import { UpdateHistory } from './update-history.js';
import { UpdateJournal, type JournalEntry, type SwapStep } from './update-journal.js';
import { UpdateWindow } from './update-window.js';
import { verifyContainer } from './verify-container.js';

/** What the update flow needs of the containers module. */
export interface UpdaterContainers {
  executor: Pick<ContainerExecutor, 'prepareDevices' | 'create' | 'start' | 'stop'>;
  specOf(name: string): ContainerSpec;
  desiredContainers(): DesiredContainer[];
  requestReconcile(): void;
  noteFailure(name: string, action: string, err: unknown): void;
}

export interface UpdaterOptions {
  config: Pick<AgentConfig, 'update' | 'state'>;
  engine: DockerEngineLink;
  /** What the flow asks of the engine (the Engine port); by default dockerode over `engine`. */
  api?: Engine;
  puller: ImagePuller;
  store: StateStore;
  bus: EventBus;
  logger: Logger;
  containers: () => UpdaterContainers;
  /** Saves a changed container's work as a snapshot (or finds it saved already) before it is replaced. */
  work: () => { saveWork(name: string, containerId: string, why: string): Promise<SavedWork | undefined> };
  /** The clock for the retry backoff (tests may inject one). */
  now?: () => number;
  /** Fault injection for the crash tests: called right after each journal write. */
  onStep?: (step: SwapStep) => void;
}

export interface UpdateJob {
  container: string;
  image: string;
  reason: 'desired' | 'command' | 'check' | 'rollback' | 'restore';
  force?: boolean;
  requestId?: string;
  /**
   * A command's pin of its image in the desired state: called inside the flow (the loop cannot
   * act on the container meanwhile) once the update is sure to be tried (journaled), is done
   * already, or waits for its container to be created. Never for an update refused before it
   * changed anything (a full state.dir, a failed pull): a refusal changes nothing.
   */
  pin?: () => Promise<void>;
  /** A snapshot this robot committed itself (restore): images.verify does not apply to it. */
  ownImage?: boolean;
  /** Set by the flow: what the new container is created from (images.verify: repository@digest). */
  runImage?: string;
}

/**
 * Unattended updates: pull while the old container runs, wait for the window and the lock,
 * swap (the old one stopped and kept under another name), prove the new one healthy, and
 * either remove the old or put it back by itself. Every swap step is journaled before it is
 * taken, so an agent killed at any point finishes or undoes it at its next start. One update
 * at a time.
 */
export class Updater {
  readonly name = 'update';
  readonly history: UpdateHistory;
  private readonly journal: UpdateJournal;
  private readonly window: UpdateWindow;
  /** Errors the flow has already reported as update.failed (so a background caller does not again). */
  private readonly reported = new WeakSet<object>();
  /** Updates accepted outside the window and waiting for it, by container: the image. */
  private readonly scheduled = new Map<string, string>();
  /** Updates queued or running, by container (a command may queue behind one from the loop). */
  private readonly updating = new Map<string, number>();
  private readonly abort = new AbortController();
  private readonly queue = new SerialQueue();
  private recovered: Promise<void>;
  private markRecovered: () => void = () => undefined;
  private unsubscribeBus: (() => void) | undefined;
  /** Background updates that failed, by container: not begun again before retryAt (update.retry). */
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
    this.recovered = new Promise((resolve) => (this.markRecovered = resolve));
    this.now = o.now ?? Date.now;
  }

  async start(): Promise<void> {
    this.history.load();
    const recover = () => {
      clearTimeout(this.recoverTimer);
      this.recoverTimer = undefined;
      void this.serially(() => this.recover()).finally(() => this.markRecovered());
    };
    this.recoverNow = recover;
    this.unsubscribeBus = this.o.bus.subscribe((event) => {
      // Whenever the engine comes back, not only at start: a swap cut short by an engine that
      // died under it (journal left, old container aside) is settled as soon as it can be.
      if (event.type === 'docker.connected') recover();
      if (event.type !== 'desired.changed') return;
      // The fleet naming a container anew is asking again: a target that rolled back may be retried.
      const named = event.containers as string[];
      if (named.some((n) => this.history.rolledBack.delete(n))) void this.history.save().catch(() => undefined);
    });
    if (this.o.engine.available) recover();
  }

  async stop(): Promise<void> {
    this.unsubscribeBus?.();
    for (const retry of this.retries.values()) clearTimeout(retry.timer);
    clearTimeout(this.recoverTimer);
    this.recoverNow = () => undefined;
    this.abort.abort();
    this.window.destroy();
    // A swap in flight is undone by recovery at the next start if it cannot finish now.
    await this.queue.idle();
  }

  /** Resolves once a journal left by a previous run has been finished or undone. */
  ready(): Promise<void> {
    return this.recovered;
  }

  get busy(): ReadonlySet<string> {
    return new Set(this.updating.keys());
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
   * From the reconcile loop or the digest check: runs in the background. A failed update (from
   * here or a command) backs this container's background updates off (update.retry, doubling up
   * to its max, reset only by a success): the loop asks on every pass, and is turned away
   * quietly until the retry time.
   */
  startInBackground(container: string, image: string, reason: UpdateJob['reason'] = 'desired'): void {
    if (this.updating.has(container)) return;
    if ((this.retries.get(container)?.retryAt ?? 0) > this.now()) return;
    void this.run({ container, image, reason }).catch((err: unknown) => {
      const delay = Math.max(0, (this.retries.get(container)?.retryAt ?? 0) - this.now());
      const info = toErrorInfo(err, 'update_failed');
      const message = `${info.message}; the update is tried again in about ${Math.ceil(delay / 1000)} s`;
      this.o.containers().noteFailure(container, 'update', new AgentError(info.code, message, { cause: err }));
    });
  }

  /** When the update of a container may be begun again in the background (ms since the epoch), if it is backing off. */
  retryAt(container: string): number | undefined {
    return this.retries.get(container)?.retryAt;
  }

  private backOff(container: string): number {
    const { initial, max } = this.o.config.update.retry;
    const retry: Retry = this.retries.get(container) ?? {
      backoff: new Backoff({ initialMs: initial * 1000, maxMs: max * 1000 }),
      retryAt: 0,
      timer: undefined,
    };
    const delay = retry.backoff.next();
    retry.retryAt = this.now() + delay;
    clearTimeout(retry.timer);
    // The loop may be backing off longer itself: it is asked again at this retry time.
    retry.timer = setTimeout(() => this.o.containers().requestReconcile(), delay + 10);
    retry.timer.unref();
    this.retries.set(container, retry);
    return delay;
  }

  /**
   * From a command outside the maintenance window (not forced): the image is pinned at once (the
   * operator's intent survives a restart of the agent: the loop updates to it in the window) and
   * the update runs in the background, where it waits for the window; the answer comes at once,
   * the outcome as update.* events with the request id. A command that waited in place would hold
   * a slot of the long lane for hours, and a few of them would turn every pull and snapshot away.
   */
  async scheduleForWindow(job: UpdateJob): Promise<UpdateResult | undefined> {
    if (job.force || this.window.isOpen()) return undefined;
    const nextWindow = this.window.nextOpening()?.toISOString() ?? null;
    const answer: UpdateResult = {
      status: 'scheduled',
      container: job.container,
      from: null,
      to: job.image,
      at: now(),
      nextWindow,
    };
    // One waiting update per container: the same request again is the same answer, another image
    // is refused (a flood of update requests must not grow a queue of waiting updates).
    const waiting = this.scheduled.get(job.container);
    if (waiting === job.image) return answer;
    if (waiting !== undefined) {
      const when = nextWindow ?? 'never, by update.window';
      throw new AgentError(
        'update_scheduled',
        `${job.container} already waits for the maintenance window to update to ${waiting} (opens ${when}); use force to update now`,
      );
    }
    await job.pin?.();
    this.scheduled.set(job.container, job.image);
    void this.run(job)
      .finally(() => this.scheduled.delete(job.container))
      .catch((err: unknown) => {
        const error = toErrorInfo(err, 'update_failed');
        // Stopped while waiting: the pin stands and the next start takes it up in the window.
        if (error.code === 'update_aborted') return;
        // The flow reports its own failures as update.failed; what it throws before it has begun
        // (the container does not exist yet, say) is reported here, since nobody awaits the answer.
        if (!(err instanceof Object) || !this.reported.has(err)) {
          this.emit('update.failed', { container: job.container, from: null, to: job.image, error }, job.requestId);
        }
        this.o.logger.warn('a scheduled update did not run', { container: job.container, error });
      });
    return answer;
  }

  /** From a command: waits for the outcome (a command is never turned away by the backoff). */
  async run(job: UpdateJob): Promise<UpdateResult> {
    this.updating.set(job.container, (this.updating.get(job.container) ?? 0) + 1);
    try {
      const result = await this.serially(() => this.flow(job));
      if (result.status === 'done' || result.status === 'up_to_date') {
        clearTimeout(this.retries.get(job.container)?.timer);
        this.retries.delete(job.container);
      }
      return result;
    } catch (err) {
      // Whoever asked (a command pins its image, so the loop would ask again at once): the next
      // attempt in the background waits its turn.
      this.backOff(job.container);
      throw err;
    } finally {
      const left = (this.updating.get(job.container) ?? 1) - 1;
      if (left > 0) this.updating.set(job.container, left);
      else this.updating.delete(job.container);
      this.o.containers().requestReconcile();
    }
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.run(fn);
  }

  private async flow(job: UpdateJob): Promise<UpdateResult> {
    const { container: name, image: target, requestId } = job;
    const c = this.o.containers();
    const spec = c.specOf(name);
    const old = await findManagedContainer(this.api, name);
    if (!old) {
      await job.pin?.();
      throw new AgentError('not_found', `container ${name} does not exist yet; it will be created with ${target}`);
    }
    const from = old.Labels[LABELS.image] ?? old.Image;
    const base = { container: name, from, to: target, ...(requestId ? { requestId } : {}) };
    let tx: ReplaceTransaction | undefined;
    let saved: SavedWork | undefined;
    this.setState({ status: 'pulling', ...base, progress: null });
    this.emit('update.started', { ...base, reason: job.reason }, requestId);
    try {
      // images.verify: a covered image is pulled (which checks its signature first) unless an
      // image verified for that name is here (a copy by that name proves nothing), and runs by the
      // digest verified. A rollback goes back to what ran, and a restore of this robot's own
      // snapshot runs what it committed itself.
      const verify = job.reason !== 'rollback' && !job.ownImage && (this.o.puller.covers?.(target) ?? false);
      const present = await imageId(this.api, target);
      if (!present || job.reason === 'check' || (verify && (await this.o.puller.mustVerify(target)))) {
        await this.o.puller.pull(parseImageReference(target), {
          requestId: requestId ?? `update-${name}-${Date.now()}`,
          progress: (f) => {
            this.setState({ progress: { current: Number(f.current ?? 0), total: Number(f.total ?? 0) } });
            this.emit('update.progress', { ...base, ...f }, requestId);
          },
        });
      }
      job.runImage = verify ? await this.o.puller.runReference(target) : target;
      const targetId = await imageId(this.api, job.runImage);
      if (targetId === old.ImageID && from === target) await job.pin?.();
      if (targetId === old.ImageID && from === target)
        return this.finish({ status: 'up_to_date', container: name, from, to: target, at: now() }, requestId);
      await waitForGates({
        config: this.o.config.update,
        window: this.window,
        force: job.force ?? false,
        signal: this.abort.signal,
        onWait: (wait) => this.setState({ status: 'waiting', ...wait }),
      });
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
    return this.swap(job, tx, saved, spec, base);
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
    spec: ContainerSpec,
    base: Record<string, unknown>,
  ): Promise<UpdateResult> {
    const engine = this.api;
    const c = this.o.containers();
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
          mappings = await c.executor.prepareDevices(name);
        },
        stop: () => c.executor.stop(old.id, name),
        create: (temporary) => c.executor.create(name, job.image, job.runImage ?? job.image, mappings, temporary),
        start: (id) => c.executor.start(id, name),
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
    base: Record<string, unknown>,
  ): Promise<UpdateResult> {
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
    if (err instanceof Object) this.reported.add(err);
    throw err;
  }

  private finish(result: UpdateResult, requestId: string | undefined): UpdateResult {
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

  private emit(type: string, fields: Record<string, unknown>, requestId: string | undefined): void {
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
  timer: NodeJS.Timeout | undefined;
}

function now(): string {
  return new Date().toISOString();
}
