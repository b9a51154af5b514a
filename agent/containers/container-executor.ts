import type { ContainerSpec } from '../config/types.js';
import { AgentError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { engineMessage, isEngineFailure, type Engine } from '../docker/engine.js';
import { parseImageReference } from '../core/image-reference.js';
import type { EventBus } from '../state/event-bus.js';
import type { Step } from './container-plan.js';
import { createOptions } from './container-spec.js';
import type { DeviceMapping } from './device-mappings.js';
import type { RecreateJournal } from './recreate-journal.js';
import type { ReplaceEntry } from './replace-journal.js';
import { ReplaceTransaction } from './replace-transaction.js';

export interface ExecutorDeps {
  engine: Engine;
  spec: (name: string) => ContainerSpec;
  /** The spec's device mappings as of now, with the stable host nodes already made for them. */
  prepareDevices: (name: string) => Promise<DeviceMapping[]>;
  stableNode: (key: string) => string;
  /** Starts a pull in the background; the loop is told again when it ends. */
  startPull: (image: string, forContainer: string) => void;
  /**
   * A new image for a container that exists: the update's replacement, in the loop's turn (its
   * pull, when one is needed, begins in the background and the swap comes on a later pass).
   */
  replace: (step: Extract<Step, { action: 'replace' }>) => Promise<void>;
  /** What to create a container of this image from (images.verify: the verified repository@digest). */
  runReference?: (image: string) => Promise<string>;
  /** Where a container's changes are committed before it is replaced (snapshots.repository). */
  commitRepository: string;
  /** Written before each step of a recreate, so a crash mid-way is settled at the next start. */
  journal: RecreateJournal;
  /** Fault injection for the crash tests only: called after each recreate step is journaled. */
  onRecreateStep?: (step: string) => void;
  /** A recreate could not be undone now (its journal kept): the loop settles it on its next pass. */
  onUnsettled: () => void;
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
        const id = await this.create(step.name, step.image, (await this.d.runReference?.(step.image)) ?? step.image);
        await this.start(id, step.name);
        this.d.bus.emit('container.created', { name: step.name, image: step.image, containerId: id });
        return;
      }
      case 'start':
        await this.start(step.id, step.name);
        return;
      case 'stop':
        if (step.reason === 'orphan') await this.stopOrphan(step.id, step.name);
        else await this.stop(step.id, step.name);
        this.d.bus.emit('container.stopped', { name: step.name, reason: step.reason });
        return;
      case 'recreate':
        await this.recreate(step);
        return;
      case 'replace':
        await this.d.replace(step);
        return;
    }
  }

  /** The spec's device mappings as of now, their stable nodes made: before a replacement stops anything. */
  prepareDevices(name: string): Promise<DeviceMapping[]> {
    return this.d.prepareDevices(name);
  }

  /**
   * Creates a container for a spec (used by updates too); its id. With the devices as they are
   * now, or as `prepared` just before (a replacement prepares them before it stops the old one).
   * `temporary`: the Docker name to create it under while the old one still holds `name` (a
   * replacement renames it once it started); its labels say `name` all the same, which is how
   * the observer tells it from the container of that name and the scan finds it left over.
   */
  async create(
    name: string,
    image: string,
    runImage: string,
    prepared?: DeviceMapping[],
    temporary?: string,
  ): Promise<string> {
    const spec = this.d.spec(name);
    const mappings = prepared ?? (await this.d.prepareDevices(name));
    const as = temporary ?? name;
    try {
      const stableNode = this.d.stableNode;
      const options = createOptions({ name, spec, image, runImage, mappings, stableNode });
      return await this.d.engine.createContainer({ ...options, name: as });
    } catch (err) {
      if (isEngineFailure(err, 'conflict')) {
        const message =
          `a container named ${as} exists that the agent did not make; ` +
          `rename or remove it (docker rename ${as} ${as}-manual)`;
        throw new AgentError('name_conflict', message);
      }
      if (isEngineFailure(err, 'not_found')) {
        throw new AgentError('image_not_found', `image ${runImage} is not on this robot`);
      }
      throw new AgentError('create_failed', `could not create container ${as}: ${engineMessage(err)}`);
    }
  }

  async start(id: string, name: string): Promise<void> {
    try {
      await this.d.engine.startContainer(id);
    } catch (err) {
      throw new AgentError('start_failed', `container ${name} did not start: ${engineMessage(err)}`);
    }
  }

  async stop(id: string, name: string): Promise<void> {
    try {
      await this.d.engine.stopContainer(id, this.d.spec(name).stopTimeout);
    } catch (err) {
      throw new AgentError('stop_failed', `container ${name} did not stop: ${engineMessage(err)}`);
    }
  }

  /** A restart by command, with the spec's stopTimeout. */
  async restart(id: string, name: string): Promise<void> {
    try {
      await this.d.engine.restartContainer(id, this.d.spec(name).stopTimeout);
    } catch (err) {
      throw new AgentError('restart_failed', `container ${name} did not restart: ${toErrorInfo(err).message}`);
    }
  }

  /**
   * A container whose spec left the config: there is no spec, so no stopTimeout of ours; the
   * engine uses the container's own (its StopTimeout, else 10 s).
   */
  private async stopOrphan(id: string, name: string): Promise<void> {
    try {
      await this.d.engine.stopContainer(id);
    } catch (err) {
      const why = engineMessage(err);
      throw new AgentError('stop_failed', `container ${name} (no longer in the config) did not stop: ${why}`);
    }
  }

  /**
   * Replaces a container without ever losing it (the one replacement transaction, as updates
   * use): stop, commit its changes (so a student's work survives), move it aside under another
   * name, create and start the new one, and only then remove the old. If the new one cannot be
   * made or started, the old one comes back as it was.
   */
  private async recreate(step: Extract<Step, { action: 'recreate' }>): Promise<void> {
    // Asked before anything is stopped: an image that may not run refuses the recreate untouched.
    const verifiedRun = await this.d.runReference?.(step.image);
    const entry: ReplaceEntry = {
      container: step.name,
      step: 'stopping',
      from: { image: step.image, imageId: '', containerId: step.id },
      to: { image: step.image },
      aside: `${step.name}-replaced-${stamp()}`,
      startedAt: new Date().toISOString(),
    };
    const onRecreateStep = this.d.onRecreateStep;
    const options = {
      engine: this.d.engine,
      journal: this.d.journal,
      logger: this.d.logger,
      what: 'recreate',
      ...(onRecreateStep ? { onStep: (s: string) => onRecreateStep(`recreate:${s}`) } : {}),
    };
    // First of all: a journal that cannot be written (a full disk) refuses the recreate untouched.
    let tx: ReplaceTransaction;
    try {
      tx = ReplaceTransaction.begin(options, entry);
    } catch (err) {
      const { code, message } = toErrorInfo(err, 'state_write_failed');
      const what = `could not journal the recreate of ${step.name} (${message}); stopped before stopping`;
      throw new AgentError(code, what, { cause: err });
    }
    let committed: string | undefined;
    let created: string | undefined;
    let mappings: DeviceMapping[] | undefined;
    try {
      created = await tx.run({
        prepare: async () => {
          mappings = await this.prepareDevices(step.name);
        },
        stop: () => this.stop(step.id, step.name),
        afterStop: async () => {
          committed = await this.commitChanges(step.id, step.name, step.image);
        },
        // The same image with a new spec or new devices carries the work on.
        create: () => this.create(step.name, step.image, committed ?? verifiedRun ?? step.image, mappings),
        start: (id) => this.start(id, step.name),
      });
    } catch (err) {
      const name = step.name;
      this.d.logger.warn('replacement failed; putting the old container back', { name, error: err as Error });
      // Kept in the journal when it cannot be done now: recovery puts it back when the engine answers.
      await tx.undo().catch((e: unknown) => {
        this.d.logger.error('could not put the old container back', { name, error: toErrorInfo(e) });
        this.d.onUnsettled();
      });
      throw err;
    }
    const { name, reason, image } = step;
    const made = { name, reason, image, ...(committed ? { committed } : {}), containerId: created };
    this.d.bus.emit('container.recreated', made);
  }

  /** Commits a container that has changes; returns the commit's reference, or undefined. */
  async commitChanges(id: string, name: string, image: string): Promise<string | undefined> {
    // Mount points Docker made are not changes: a container nobody touched is not committed.
    const changes = await this.d.engine.containerChanges(id);
    if (changes.length === 0) return undefined;
    this.d.logger.debug('committing a changed container', {
      name,
      changes: changes.slice(0, 10).map((c) => `${c.Kind}${c.Path}`),
    });
    // Into the robot's own snapshot repository, never the vendor's: a commit there would pass
    // for the vendor's image to anything that lists or pushes that repository.
    const tag = `${name}-${stamp()}`;
    const ref = parseImageReference(`${this.d.commitRepository}:${tag}`);
    try {
      const comment = `robot-agent: ${name} (from ${image}) before it was replaced`;
      await this.d.engine.commitContainer(id, { repo: ref.familiarRepository, tag, comment, pause: false });
    } catch (err) {
      const message = `could not commit ${name}'s changes before recreating it, so it was put back as it was: ${engineMessage(err)}`;
      throw new AgentError('commit_failed', message);
    }
    const committed = ref.familiar;
    this.d.bus.emit('container.committed', { name, image: committed, changes: changes.length });
    return committed;
  }
}

/** 20261124T013000123Z: sortable, to the millisecond, and valid in tags and container names. */
export function stamp(): string {
  return new Date().toISOString().replace(/[-:.]/g, '');
}
