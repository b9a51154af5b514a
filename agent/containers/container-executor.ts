import type Docker from 'dockerode';
import type { ContainerSpec } from '../config/types.js';
import { AgentError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { changesOf } from '../docker/container-changes.js';
import { parseImageReference } from '../images/image-reference.js';
import type { EventBus } from '../state/event-bus.js';
import type { Step } from './container-plan.js';
import { createOptions } from './container-spec.js';
import type { DeviceMapping } from './device-mappings.js';
import type { RecreateEntry, RecreateJournal, RecreateStep } from './recreate-journal.js';

export interface ExecutorDeps {
  docker: () => Docker;
  spec: (name: string) => ContainerSpec;
  /** The spec's device mappings as of now, with the stable host nodes already made for them. */
  prepareDevices: (name: string) => Promise<DeviceMapping[]>;
  stableNode: (key: string) => string;
  /** Starts a pull in the background; the loop is told again when it ends. */
  startPull: (image: string, forContainer: string) => void;
  /** Hands a new image for a running container to the update flow (in the background). */
  startUpdate: (name: string, image: string) => void;
  /** What to create a container of this image from (images.verify: the verified repository@digest). */
  runReference?: (image: string) => Promise<string>;
  /** Where a container's changes are committed before it is replaced (snapshots.repository). */
  commitRepository: string;
  /** Written before each step of a recreate, so a crash mid-way is settled at the next start. */
  journal: RecreateJournal;
  /** Fault injection for the crash tests only: called after each recreate step is journaled. */
  onRecreateStep?: (step: string) => void;
  bus: EventBus;
  logger: Logger;
}

/**
 * Runs one planned step against the engine. Small on purpose: what to do was decided by the
 * planner; this only knows how, and how to put things back when a replacement fails.
 */
export class ContainerExecutor {
  constructor(private readonly d: ExecutorDeps) {}

  async run(step: Step): Promise<void> {
    switch (step.action) {
      case 'pull':
        this.d.startPull(step.image, step.name);
        return;
      case 'run': {
        const container = await this.create(step.name, step.image, (await this.d.runReference?.(step.image)) ?? step.image);
        await this.start(container, step.name);
        this.d.bus.emit('container.created', { name: step.name, image: step.image, containerId: container.id });
        return;
      }
      case 'start':
        await this.start(this.d.docker().getContainer(step.id), step.name);
        return;
      case 'stop':
        if (step.reason === 'orphan') await this.stopOrphan(step.id, step.name);
        else await this.stop(step.id, step.name);
        this.d.bus.emit('container.stopped', { name: step.name, reason: step.reason });
        return;
      case 'recreate':
        await this.recreate(step);
        return;
      case 'update':
        this.d.startUpdate(step.name, step.image);
        return;
    }
  }

  /** Creates a container for a spec with its devices as they are now (used by updates too). */
  async create(name: string, image: string, runImage: string): Promise<Docker.Container> {
    const spec = this.d.spec(name);
    const mappings = await this.d.prepareDevices(name);
    try {
      return await this.d.docker().createContainer(createOptions({ name, spec, image, runImage, mappings, stableNode: this.d.stableNode }));
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 409) throw new AgentError('name_conflict', `a container named ${name} exists that the agent did not make; rename or remove it (docker rename ${name} ${name}-manual)`);
      if (status === 404) throw new AgentError('image_not_found', `image ${runImage} is not on this robot`);
      throw new AgentError('create_failed', `could not create container ${name}: ${engineMessage(err)}`);
    }
  }

  async start(container: Docker.Container, name: string): Promise<void> {
    try {
      await container.start();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 304) return;
      throw new AgentError('start_failed', `container ${name} did not start: ${engineMessage(err)}`);
    }
  }

  async stop(id: string, name: string): Promise<void> {
    try {
      await this.d.docker().getContainer(id).stop({ t: this.d.spec(name).stopTimeout });
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 304 || status === 404) return;
      throw new AgentError('stop_failed', `container ${name} did not stop: ${engineMessage(err)}`);
    }
  }

  /**
   * A container whose spec left the config: there is no spec, so no stopTimeout of ours; the
   * engine uses the container's own (its StopTimeout, else 10 s).
   */
  private async stopOrphan(id: string, name: string): Promise<void> {
    try {
      await this.d.docker().getContainer(id).stop();
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 304 || status === 404) return;
      const why = engineMessage(err);
      throw new AgentError('stop_failed', `container ${name} (no longer in the config) did not stop: ${why}`);
    }
  }

  /**
   * Replaces a container without ever losing it: stop, commit its changes (so a student's work
   * survives), move it aside under another name, create and start the new one, and only then
   * remove the old. If the new one cannot be made or started, the old one comes back as it was.
   */
  private async recreate(step: Extract<Step, { action: 'recreate' }>): Promise<void> {
    const docker = this.d.docker();
    const old = docker.getContainer(step.id);
    const aside = `${step.name}-replaced-${stamp()}`;
    // Asked before anything is stopped: an image that may not run refuses the recreate untouched.
    const verifiedRun = await this.d.runReference?.(step.image);
    const entry: RecreateEntry = {
      container: step.name,
      step: 'stopping',
      oldContainerId: step.id,
      aside,
      startedAt: new Date().toISOString(),
    };
    // First of all: a journal that cannot be written (a full disk) refuses the recreate untouched.
    this.mark(entry, 'stopping');
    let committed: string | undefined;
    try {
      await this.stop(step.id, step.name);
      committed = await this.commitChanges(old, step.name, step.image);
      this.mark(entry, 'renaming');
      await old.rename({ name: aside });
    } catch (err) {
      // Nothing was moved: the old container is still under its name (stopped, restarted by the
      // loop as its policy says), so the journal has nothing to settle.
      this.clearJournal();
      throw err;
    }
    // The same image with a new spec or new devices carries the work on.
    const runImage = committed ?? verifiedRun ?? step.image;
    let created: Docker.Container | undefined;
    try {
      this.mark(entry, 'creating');
      created = await this.create(step.name, step.image, runImage);
      this.mark(entry, 'starting', { newContainerId: created.id });
      await this.start(created, step.name);
    } catch (err) {
      this.d.logger.warn('replacement failed; putting the old container back', { name: step.name, error: err as Error });
      await created?.remove({ force: true }).catch(() => undefined);
      try {
        await old.rename({ name: step.name });
        await old.start().catch(() => undefined);
        this.clearJournal();
      } catch (e) {
        // Kept in the journal: recovery puts it back when the engine answers again.
        this.d.logger.error('could not rename the old container back', { name: step.name, error: e as Error });
      }
      throw err;
    }
    try {
      this.mark(entry, 'removing');
    } catch (err) {
      // The new one runs: recovery would only remove the old one, which is done right here.
      this.d.logger.warn('could not journal the last recreate step', { name: step.name, error: toErrorInfo(err) });
    }
    await old.remove({ force: true }).catch((err: unknown) => this.d.logger.warn('could not remove the replaced container', { name: aside, error: err as Error }));
    this.clearJournal();
    this.d.bus.emit('container.recreated', { name: step.name, reason: step.reason, image: step.image, ...(committed ? { committed } : {}), containerId: created.id });
  }

  private mark(entry: RecreateEntry, step: RecreateStep, extra: Partial<RecreateEntry> = {}): void {
    Object.assign(entry, extra, { step });
    try {
      this.d.journal.write(entry);
    } catch (err) {
      const { code, message } = toErrorInfo(err, 'state_write_failed');
      const what = `could not journal the recreate of ${entry.container} (${message}); stopped before ${step}`;
      throw new AgentError(code, what, { cause: err });
    }
    this.d.onRecreateStep?.(`recreate:${step}`);
  }

  private clearJournal(): void {
    try {
      this.d.journal.clear();
    } catch (err) {
      this.d.logger.warn('could not clear the recreate journal', { error: toErrorInfo(err) });
    }
  }

  /** Commits a container that has changes; returns the commit's reference, or undefined. */
  async commitChanges(container: Docker.Container, name: string, image: string): Promise<string | undefined> {
    // Mount points Docker made are not changes: a container nobody touched is not committed.
    const info = (await container.inspect()) as { Mounts?: Array<{ Destination: string }> };
    const changes = await changesOf(container, info.Mounts ?? []);
    if (changes.length === 0) return undefined;
    this.d.logger.debug('committing a changed container', { name, changes: changes.slice(0, 10).map((c) => `${c.Kind}${c.Path}`) });
    // Into the robot's own snapshot repository, never the vendor's: a commit there would pass
    // for the vendor's image to anything that lists or pushes that repository.
    const tag = `${name}-${stamp()}`;
    const ref = parseImageReference(`${this.d.commitRepository}:${tag}`);
    try {
      const comment = `robot-agent: ${name} (from ${image}) before it was replaced`;
      await container.commit({ repo: ref.familiarRepository, tag, comment, pause: false });
    } catch (err) {
      throw new AgentError('commit_failed', `could not commit ${name}'s changes before recreating it, so it was left as it is: ${engineMessage(err)}`);
    }
    const committed = ref.familiar;
    this.d.bus.emit('container.committed', { name, image: committed, changes: changes.length });
    return committed;
  }
}

export function engineMessage(err: unknown): string {
  const json = (err as { json?: { message?: string } }).json;
  return (json?.message ?? (err as Error).message ?? String(err)).trim();
}

/** 20261124T013000123Z: sortable, to the millisecond, and valid in tags and container names. */
export function stamp(): string {
  return new Date().toISOString().replace(/[-:.]/g, '');
}
