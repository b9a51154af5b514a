import type { AgentConfig } from '../config/types.js';
import { defineCommand, type CommandDefinition } from '../commands/command.js';
import { AgentError } from '../core/errors.js';
import type { DockerEngineLink } from '../docker/engine-link.js';
import type { StateStore } from '../state/state-store.js';
import type { ImageInventory } from './image-inventory.js';
import { allowedReference } from './image-reference.js';
import type { ImagePuller } from './image-puller.js';

/**
 * Image commands. Every reference passes the local allowlist before anything reaches the
 * engine: the fleet asks, the robot's own config decides.
 */
export function imageCommands(d: { config: AgentConfig['images']; engine: DockerEngineLink; store: StateStore; inventory: ImageInventory; puller: ImagePuller }): CommandDefinition[] {
  const managed = [...d.config.allow, ...d.config.pushAllow];
  const engine = () => {
    const docker = d.store.get().docker;
    if (!docker.available) throw new AgentError('docker_unavailable', `the Docker engine is not available: ${docker.error?.message ?? 'unknown reason'}`);
    return d.engine.docker;
  };
  const inspect = async (reference: string) => {
    try {
      return (await engine().getImage(reference).inspect()) as { Id: string };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) throw new AgentError('image_not_found', `no image ${reference} on this robot`);
      throw err;
    }
  };
  return [
    defineCommand({ name: 'images', run: async () => (engine(), d.inventory.refresh()) }),
    defineCommand<{ image: string }, unknown>({
      name: 'plan',
      run: async ({ image }) => d.puller.plan(allowedReference(image, d.config.allow)),
    }),
    defineCommand<{ image: string }, unknown>({
      name: 'pull',
      run: async ({ image }, ctx) => d.puller.pull(allowedReference(image, d.config.allow), { requestId: ctx.requestId, progress: (f) => ctx.progress(f, 'pull.progress') }),
    }),
    defineCommand<{ source: string; target: string }, unknown>({
      name: 'tag',
      run: async ({ source, target }) => {
        const from = allowedReference(source, managed, 'images.allow and images.pushAllow');
        const to = allowedReference(target, managed, 'images.allow and images.pushAllow');
        const image = await inspect(from.familiar);
        await engine().getImage(image.Id).tag({ repo: to.familiarRepository, ...(to.tag ? { tag: to.tag } : {}) });
        await d.inventory.refresh();
        return { source: from.familiar, target: to.familiar, imageId: image.Id };
      },
    }),
    defineCommand<{ image: string }, unknown>({
      name: 'remove',
      run: async ({ image }) => {
        const ref = allowedReference(image, managed, 'images.allow and images.pushAllow');
        const found = await inspect(ref.familiar);
        const users = (await engine().listContainers({ all: true })).filter((c) => c.ImageID === found.Id);
        if (users.length > 0) {
          throw new AgentError('in_use', `${ref.familiar} is used by container ${users.map((c) => c.Names.map((n) => n.replace(/^\//, '')).join('/')).join(', ')}; remove or update the container first`);
        }
        const removed = (await engine().getImage(ref.familiar).remove()) as Array<{ Untagged?: string; Deleted?: string }>;
        await d.inventory.refresh();
        return { image: ref.familiar, untagged: removed.flatMap((r) => (r.Untagged ? [r.Untagged] : [])), deleted: removed.flatMap((r) => (r.Deleted ? [r.Deleted] : [])) };
      },
    }),
  ];
}
