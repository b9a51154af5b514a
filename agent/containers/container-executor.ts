import type Docker from 'dockerode';
import type { ContainerSpec } from '../config/types.js';
import { AgentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { parseImageReference } from '../images/image-reference.js';
import type { EventBus } from '../state/event-bus.js';
import type { Step } from './container-plan.js';
import { createOptions } from './container-spec.js';
import type { DeviceMapping } from './device-mappings.js';

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
        const container = await this.create(step.name, step.image, step.image);
        await this.start(container, step.name);
        this.d.bus.emit('container.created', { name: step.name, image: step.image, containerId: container.id });
        return;
      }
      case 'start':
        await this.start(this.d.docker().getContainer(step.id), step.name);
        return;
      case 'stop':
        await this.stop(step.id, step.name);
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
   * Replaces a container without ever losing it: stop, commit its changes (so a student's work
   * survives), move it aside under another name, create and start the new one, and only then
   * remove the old. If the new one cannot be made or started, the old one comes back as it was.
   */
  private async recreate(step: Extract<Step, { action: 'recreate' }>): Promise<void> {
    const docker = this.d.docker();
    const old = docker.getContainer(step.id);
    await this.stop(step.id, step.name);
    const committed = await this.commitChanges(old, step.name, step.image);
    // The same image with a new spec or new devices carries the work on.
    const runImage = committed ?? step.image;
    const aside = `${step.name}-replaced-${stamp()}`;
    await old.rename({ name: aside });
    let created: Docker.Container | undefined;
    try {
      created = await this.create(step.name, step.image, runImage);
      await this.start(created, step.name);
    } catch (err) {
      this.d.logger.warn('replacement failed; putting the old container back', { name: step.name, error: err as Error });
      await created?.remove({ force: true }).catch(() => undefined);
      await old.rename({ name: step.name }).catch((e: unknown) => this.d.logger.error('could not rename the old container back', { name: step.name, error: e as Error }));
      await old.start().catch(() => undefined);
      throw err;
    }
    await old.remove({ force: true }).catch((err: unknown) => this.d.logger.warn('could not remove the replaced container', { name: aside, error: err as Error }));
    this.d.bus.emit('container.recreated', { name: step.name, reason: step.reason, image: step.image, ...(committed ? { committed } : {}), containerId: created.id });
  }

  /** Commits a container that has changes; returns the commit's reference, or undefined. */
  async commitChanges(container: Docker.Container, name: string, image: string): Promise<string | undefined> {
    const changes = (await container.changes()) as unknown[] | null;
    if (!changes || changes.length === 0) return undefined;
    const ref = parseImageReference(image);
    const tag = `${name}-${stamp()}`;
    try {
      await container.commit({ repo: ref.familiarRepository, tag, comment: `robot-agent: ${name} before it was recreated`, pause: false });
    } catch (err) {
      throw new AgentError('commit_failed', `could not commit ${name}'s changes before recreating it, so it was left as it is: ${engineMessage(err)}`);
    }
    const committed = `${ref.familiarRepository}:${tag}`;
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
