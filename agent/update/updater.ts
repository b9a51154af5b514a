import type Docker from 'dockerode';
import type { AgentConfig, ContainerSpec } from '../config/types.js';
import type { DesiredContainer } from '../containers/container-plan.js';
import type { ContainerExecutor } from '../containers/container-executor.js';
import { stamp } from '../containers/container-executor.js';
import { findManagedContainer } from '../containers/container-observer.js';
import { LABELS } from '../containers/container-spec.js';
import { lastLogLines } from '../docker/container-logs.js';
import { AgentError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { DockerEngineLink } from '../docker/engine-link.js';
import { parseImageReference } from '../images/image-reference.js';
import type { ImagePuller } from '../images/image-puller.js';
import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';
import type { UpdateResult, UpdateState } from '../state/types.js';
import { waitForGates } from './update-gates.js';
import { UpdateHistory } from './update-history.js';
import { UpdateJournal, type JournalEntry, type SwapStep } from './update-journal.js';
import { recoverFromJournal } from './update-recovery.js';
import { UpdateWindow } from './update-window.js';
import { verifyContainer } from './verify-container.js';

/** What the update flow needs of the containers module. */
export interface UpdaterContainers {
  executor: Pick<ContainerExecutor, 'create' | 'start' | 'stop' | 'commitChanges'>;
  specOf(name: string): ContainerSpec;
  desiredContainers(): DesiredContainer[];
  requestReconcile(): void;
  noteFailure(name: string, action: string, err: unknown): void;
}

export interface UpdaterOptions {
  config: Pick<AgentConfig, 'update' | 'state'>;
  engine: DockerEngineLink;
  puller: ImagePuller;
  store: StateStore;
  bus: EventBus;
  logger: Logger;
  containers: () => UpdaterContainers;
  /** Fault injection for the crash tests: called right after each journal write. */
  onStep?: (step: SwapStep) => void;
}

export interface UpdateJob {
  container: string;
  image: string;
  reason: 'desired' | 'command' | 'check' | 'rollback' | 'restore';
  force?: boolean;
  requestId?: string;
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
  /** Updates queued or running, by container (a command may queue behind one from the loop). */
  private readonly updating = new Map<string, number>();
  private readonly abort = new AbortController();
  private chain: Promise<unknown> = Promise.resolve();
  private recovered: Promise<void>;
  private markRecovered: () => void = () => undefined;
  private unsubscribe: (() => void) | undefined;
  private unsubscribeBus: (() => void) | undefined;

  constructor(private readonly o: UpdaterOptions) {
    this.history = new UpdateHistory(o.config.state.dir);
    this.journal = new UpdateJournal(o.config.state.dir);
    this.window = new UpdateWindow(o.config.update.window);
    this.recovered = new Promise((resolve) => (this.markRecovered = resolve));
  }

  async start(): Promise<void> {
    this.history.load();
    // The fleet naming a container anew is asking again: a target that rolled back may be retried.
    this.unsubscribeBus = this.o.bus.subscribe((event) => {
      if (event.type !== 'desired.changed') return;
      const named = event.containers as string[];
      if (named.some((n) => this.history.rolledBack.delete(n))) void this.history.save().catch(() => undefined);
    });
    const recover = () => {
      this.unsubscribe?.();
      void this.serially(() => this.recover()).finally(() => this.markRecovered());
    };
    if (this.o.engine.available) recover();
    else this.unsubscribe = this.o.engine.onConnected(recover);
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribeBus?.();
    this.abort.abort();
    this.window.destroy();
    // A swap in flight is undone by recovery at the next start if it cannot finish now.
    await this.chain.catch(() => undefined);
  }

  /** Resolves once a journal left by a previous run has been finished or undone. */
  ready(): Promise<void> {
    return this.recovered;
  }

  get busy(): ReadonlySet<string> {
    return new Set(this.updating.keys());
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
    const docker = this.docker();
    if ((await imageId(docker, previous.image)) === previous.imageId) return previous.image;
    const ref = parseImageReference(previous.image);
    try {
      await docker.getImage(previous.imageId).tag({ repo: ref.familiarRepository, tag: `${container}-previous` });
    } catch (err) {
      throw new AgentError('no_previous', `the image ${container} ran before (${previous.imageId.slice(7, 19)}) is no longer on this robot: ${(err as Error).message}`);
    }
    return `${ref.familiarRepository}:${container}-previous`;
  }

  /** From the reconcile loop or the digest check: runs in the background; a failure backs the container off. */
  startInBackground(container: string, image: string, reason: UpdateJob['reason'] = 'desired'): void {
    if (this.updating.has(container)) return;
    void this.run({ container, image, reason }).catch((err: unknown) => this.o.containers().noteFailure(container, 'update', err));
  }

  /** From a command: waits for the outcome. */
  async run(job: UpdateJob): Promise<UpdateResult> {
    this.updating.set(job.container, (this.updating.get(job.container) ?? 0) + 1);
    try {
      return await this.serially(() => this.flow(job));
    } finally {
      const left = (this.updating.get(job.container) ?? 1) - 1;
      if (left > 0) this.updating.set(job.container, left);
      else this.updating.delete(job.container);
      this.o.containers().requestReconcile();
    }
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.catch(() => undefined).then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private docker(): Docker {
    return this.o.engine.required();
  }

  private async flow(job: UpdateJob): Promise<UpdateResult> {
    const { container: name, image: target, requestId } = job;
    const docker = this.docker();
    const c = this.o.containers();
    const spec = c.specOf(name);
    const old = await findManagedContainer(docker, name);
    if (!old) throw new AgentError('not_found', `container ${name} does not exist yet; it will be created with ${target}`);
    const from = old.Labels[LABELS.image] ?? old.Image;
    const base = { container: name, from, to: target, ...(requestId ? { requestId } : {}) };
    this.setState({ status: 'pulling', ...base, progress: null });
    this.emit('update.started', { ...base, reason: job.reason }, requestId);
    try {
      const present = await imageId(docker, target);
      if (!present || job.reason === 'check') {
        await this.o.puller.pull(parseImageReference(target), {
          requestId: requestId ?? `update-${name}-${Date.now()}`,
          progress: (f) => {
            this.setState({ progress: { current: Number(f.current ?? 0), total: Number(f.total ?? 0) } });
            this.emit('update.progress', { ...base, ...f }, requestId);
          },
        });
      }
      const targetId = await imageId(docker, target);
      if (targetId === old.ImageID && from === target) return this.finish({ status: 'up_to_date', container: name, from, to: target, at: now() }, requestId);
      await waitForGates({
        config: this.o.config.update,
        window: this.window,
        force: job.force ?? false,
        signal: this.abort.signal,
        onWait: (wait) => this.setState({ status: 'waiting', ...wait }),
      });
      // Students' work in the old container survives as an image (the container itself is kept
      // until the new one is proven, and removed after).
      await c.executor.commitChanges(docker.getContainer(old.Id), name, from);
    } catch (err) {
      return this.fail(base, err, requestId);
    }
    return this.swap(job, { id: old.Id, image: from, imageId: old.ImageID }, spec, base);
  }

  private async swap(job: UpdateJob, old: { id: string; image: string; imageId: string }, spec: ContainerSpec, base: Record<string, unknown>): Promise<UpdateResult> {
    const docker = this.docker();
    const c = this.o.containers();
    const name = job.container;
    const entry: JournalEntry = {
      container: name,
      step: 'stopping',
      from: { image: old.image, imageId: old.imageId, containerId: old.id },
      to: { image: job.image },
      aside: `${name}-previous-${stamp()}`,
      ...(job.requestId ? { requestId: job.requestId } : {}),
      startedAt: now(),
    };
    const step = (s: SwapStep, extra: Partial<JournalEntry> = {}) => {
      Object.assign(entry, extra, { step: s });
      this.journal.write(entry);
      this.o.onStep?.(s);
    };
    this.setState({ status: 'swapping', waitingFor: undefined, nextWindow: undefined, progress: null });
    let newImageId: string | undefined;
    try {
      step('stopping');
      const t0 = Date.now();
      await c.executor.stop(old.id, name);
      step('renaming');
      await docker.getContainer(old.id).rename({ name: entry.aside });
      step('creating');
      const created = await c.executor.create(name, job.image, job.image);
      step('starting', { newContainerId: created.id });
      await c.executor.start(created, name);
      const downtimeMs = Date.now() - t0;
      newImageId = ((await created.inspect()) as { Image: string }).Image;
      step('verifying');
      this.setState({ status: 'verifying' });
      const proof = await verifyContainer({
        docker,
        containerId: created.id,
        name,
        stableSeconds: this.o.config.update.stableSeconds,
        healthTimeoutSeconds: this.o.config.update.healthTimeout,
        ...(spec.probe ? { probe: spec.probe } : {}),
        signal: this.abort.signal,
      });
      step('verified');
      await docker.getContainer(old.id).remove({ force: true }).catch((err: unknown) => this.o.logger.warn('could not remove the old container', { container: entry.aside, error: err as Error }));
      this.journal.clear();
      this.history.previous.set(name, { image: old.image, imageId: old.imageId });
      this.history.rolledBack.delete(name);
      await this.history.save();
      this.emit('update.verified', { ...base, by: proof.by, probe: proof.probe, downtimeMs }, job.requestId);
      return this.finish({ status: 'done', container: name, from: old.image, to: job.image, at: now() }, job.requestId);
    } catch (err) {
      // Past verification only the old container's removal is left, and recovery finishes that.
      if (entry.step === 'verified') throw err;
      // The agent is stopping: recovery undoes the swap at the next start.
      if ((err as AgentError).code === 'update_aborted') throw err;
      return this.rollBack(entry, err, newImageId, base);
    }
  }

  /** Puts the old container back as it was and says why, with what the new one printed last. */
  private async rollBack(entry: JournalEntry, cause: unknown, newImageId: string | undefined, base: Record<string, unknown>): Promise<UpdateResult> {
    const docker = this.docker();
    const error = toErrorInfo(cause, 'update_failed');
    const logs = entry.newContainerId ? await lastLines(docker, entry.newContainerId, 20) : [];
    entry.step = 'rolling-back';
    this.journal.write(entry);
    this.o.onStep?.('rolling-back');
    await recoverFromJournal(docker, entry);
    this.journal.clear();
    this.history.rolledBack.set(entry.container, { image: entry.to.image, ...(newImageId ? { imageId: newImageId } : {}), reason: error.code, at: now() });
    await this.history.save();
    this.o.logger.warn('update rolled back', { container: entry.container, to: entry.to.image, error });
    this.emit('update.rolledback', { ...base, reason: error, logs }, entry.requestId);
    return this.finish({ status: 'rolledback', container: entry.container, from: entry.from.image, to: entry.to.image, at: now(), error }, entry.requestId);
  }

  private async recover(): Promise<void> {
    const entry = this.journal.read();
    if (!entry) return;
    try {
      const outcome = await recoverFromJournal(this.docker(), entry);
      this.journal.clear();
      if (outcome === 'completed') {
        this.history.previous.set(entry.container, { image: entry.from.image, imageId: entry.from.imageId });
        await this.history.save();
      }
      this.o.logger.warn('finished an update interrupted by a restart', { container: entry.container, step: entry.step, outcome });
      this.emit('update.recovered', { container: entry.container, from: entry.from.image, to: entry.to.image, step: entry.step, outcome }, entry.requestId);
      this.setState({ status: outcome === 'completed' ? 'done' : 'rolledback', lastResult: { status: outcome === 'completed' ? 'done' : 'rolledback', container: entry.container, from: entry.from.image, to: entry.to.image, at: now(), ...(outcome === 'completed' ? {} : { error: { code: 'update_interrupted', message: `the agent stopped at step ${entry.step}; the old container was put back` } }) } });
    } catch (err) {
      // Kept: the next start tries again. The containers loop must not act meanwhile.
      this.o.logger.error('could not recover an interrupted update', { container: entry.container, error: toErrorInfo(err) });
    }
  }

  private fail(base: { container: string; from: string; to: string }, err: unknown, requestId: string | undefined): never {
    const error = toErrorInfo(err, 'update_failed');
    this.setState({ status: 'failed', waitingFor: undefined, nextWindow: undefined, progress: null, lastResult: { status: 'failed', ...base, at: now(), error } });
    this.emit('update.failed', { ...base, error }, requestId);
    throw err;
  }

  private finish(result: UpdateResult, requestId: string | undefined): UpdateResult {
    this.setState({ status: result.status === 'up_to_date' ? 'idle' : result.status === 'done' ? 'done' : 'rolledback', waitingFor: undefined, nextWindow: undefined, progress: null, lastResult: result });
    if (result.status === 'done') this.emit('update.done', { container: result.container, from: result.from, to: result.to }, requestId);
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

async function imageId(docker: Docker, ref: string): Promise<string | undefined> {
  try {
    return ((await docker.getImage(ref).inspect()) as { Id: string }).Id;
  } catch {
    return undefined;
  }
}

async function lastLines(docker: Docker, id: string, lines: number): Promise<string[]> {
  try {
    const container = docker.getContainer(id);
    const tty = ((await container.inspect()) as { Config: { Tty: boolean } }).Config.Tty;
    return (await lastLogLines(container, { tail: lines, tty, limitBytes: 64 * 1024 })).lines.filter(Boolean);
  } catch {
    return [];
  }
}

function now(): string {
  return new Date().toISOString();
}
