import type { AgentConfig } from '../config/types.js';
import { defineCommand, type CommandDefinition } from '../commands/command.js';
import { AgentError } from '../core/errors.js';
import type { Engine } from '../docker/engine.js';
import type { DockerEngineLink } from '../docker/engine-link.js';
import type { StateStore } from '../state/state-store.js';
import type { EventBus } from '../state/event-bus.js';
import { buildImage } from './image-builder.js';
import { ImageFiles } from './image-files.js';
import type { ImageInventory } from './image-inventory.js';
import { planPrune, runPrune } from './image-pruner.js';
import { pushImage } from './image-pusher.js';
import { allowedReference, isAllowed } from '../core/image-reference.js';
import type { ImagePuller } from './image-puller.js';
import type { RegistryClient } from './registry-client.js';

/**
 * Image commands. Every reference passes the local allowlist before anything reaches the
 * engine: the fleet asks, the robot's own config decides.
 */
export function imageCommands(d: {
  config: AgentConfig['images'];
  engine: DockerEngineLink;
  /** The Engine port every image operation goes through. */
  api: Engine;
  store: StateStore;
  bus: EventBus;
  inventory: ImageInventory;
  puller: ImagePuller;
  registry: RegistryClient;
  /** Image ids something else still needs (a rollback's previous image); prune keeps them. */
  protectedImages?: () => Set<string>;
  /** The agent's one ImageFiles (shared with snapshots, so saves in flight count once). */
  files?: ImageFiles;
}): CommandDefinition[] {
  const managed = [...d.config.allow, ...d.config.pushAllow];
  const api = d.api;
  const files = d.files ?? new ImageFiles({ engine: api, config: d.config });
  /** Runs an operation with .done / .failed events carrying the request id. */
  const reported = async <T>(
    kind: 'push' | 'save' | 'load' | 'import' | 'build' | 'prune',
    id: string,
    image: string | undefined,
    run: () => Promise<T>,
  ): Promise<T> => {
    try {
      const result = await run();
      d.bus.emit(`${kind}.done`, { id, ...(image ? { image } : {}) });
      await d.inventory.refresh().catch(() => undefined);
      return result;
    } catch (err) {
      d.bus.emit(`${kind}.failed`, {
        id,
        ...(image ? { image } : {}),
        error: { code: (err as AgentError).code ?? 'internal', message: (err as Error).message },
      });
      throw err;
    }
  };
  const inspect = async (reference: string) => {
    const image = await api.inspectImage(reference);
    if (!image) throw new AgentError('image_not_found', `no image ${reference} on this robot`);
    return image;
  };
  return [
    defineCommand({ name: 'images', run: async () => (d.engine.required(), d.inventory.refresh()) }),
    defineCommand({
      name: 'plan',
      lane: 'long',
      run: async ({ image }) => d.puller.plan(allowedReference(image, d.config.allow)),
    }),
    defineCommand({
      name: 'pull',
      lane: 'long',
      run: async ({ image }, ctx) =>
        d.puller.pull(allowedReference(image, d.config.allow), {
          requestId: ctx.requestId,
          progress: (f) => ctx.progress(f, 'pull.progress'),
        }),
    }),
    defineCommand({
      name: 'tag',
      run: async ({ source, target }) => {
        const from = allowedReference(source, managed, 'images.allow and images.pushAllow');
        const to = allowedReference(target, managed, 'images.allow and images.pushAllow');
        // A runnable name only for an image that could already run: otherwise tag would turn
        // a push-only name (a snapshot, anything pushed to the fleet registry) into one.
        if (isAllowed(to, d.config.allow) && !isAllowed(from, d.config.allow)) {
          throw new AgentError(
            'not_allowed',
            `${to.familiar} may run on this robot (images.allow) but ${from.familiar} may not: ` +
              'tag only gives a runnable name to an image images.allow allows',
          );
        }
        const image = await inspect(from.familiar);
        await api.tagImage(image.Id, to.familiarRepository, to.tag ?? 'latest');
        await d.inventory.refresh();
        return { source: from.familiar, target: to.familiar, imageId: image.Id };
      },
    }),
    defineCommand({
      name: 'remove',
      run: async ({ image }) => {
        const ref = allowedReference(image, managed, 'images.allow and images.pushAllow');
        const found = await inspect(ref.familiar);
        const users = (await api.listContainers()).filter((c) => c.ImageID === found.Id);
        if (users.length > 0) {
          throw new AgentError(
            'in_use',
            `${ref.familiar} is used by container ${users.map((c) => c.Names.map((n) => n.replace(/^\//, '')).join('/')).join(', ')}; remove or update the container first`,
          );
        }
        const removed = await api.removeImage(ref.familiar);
        await d.inventory.refresh();
        return {
          image: ref.familiar,
          untagged: removed.flatMap((r) => (r.Untagged ? [r.Untagged] : [])),
          deleted: removed.flatMap((r) => (r.Deleted ? [r.Deleted] : [])),
        };
      },
    }),
    defineCommand({
      name: 'push',
      lane: 'long',
      run: async ({ image }, ctx) => {
        const ref = allowedReference(image, d.config.pushAllow, 'images.pushAllow');
        return reported('push', ctx.requestId, ref.familiar, () =>
          pushImage({
            engine: api,
            registry: d.registry,
            config: d.config,
            ref,
            progress: (f) => ctx.progress(f, 'push.progress'),
          }),
        );
      },
    }),
    defineCommand({
      name: 'save',
      lane: 'long',
      run: async ({ image, file }, ctx) => {
        const ref = allowedReference(image, managed, 'images.allow and images.pushAllow');
        return reported('save', ctx.requestId, ref.familiar, () => files.save(ref, file));
      },
    }),
    defineCommand({
      name: 'load',
      lane: 'long',
      run: async ({ file }, ctx) => reported('load', ctx.requestId, undefined, () => files.load(file)),
    }),
    defineCommand({
      name: 'import',
      lane: 'long',
      run: async ({ file, image }, ctx) => {
        const ref = allowedReference(image, managed, 'images.allow and images.pushAllow');
        return reported('import', ctx.requestId, ref.familiar, () => files.import(ref, file));
      },
    }),
    defineCommand({
      name: 'build',
      lane: 'long',
      run: async ({ context, dockerfile, image }, ctx) => {
        const ref = allowedReference(image, managed, 'images.allow and images.pushAllow');
        return reported('build', ctx.requestId, ref.familiar, () =>
          buildImage({
            engine: api,
            config: d.config,
            ref,
            context,
            dockerfile,
            progress: (f) => ctx.progress(f, 'build.progress'),
          }),
        );
      },
    }),
    defineCommand({ name: 'files', run: async () => files.list() }),
    defineCommand({
      name: 'files.remove',
      run: async ({ file }) => files.remove(file),
    }),
    defineCommand({
      name: 'prune',
      run: async (_args, ctx) =>
        reported('prune', ctx.requestId, undefined, async () => {
          const images = await d.inventory.refresh();
          const inUse = new Set((await api.listContainers()).map((c) => c.ImageID));
          const steps = planPrune({
            images,
            managed,
            keep: d.config.keep,
            inUse,
            protectedIds: d.protectedImages?.() ?? new Set(),
          });
          const outcome = await runPrune(api, steps);
          return { ...outcome, bytesFreed: outcome.removed.reduce((s, r) => s + r.size, 0), keep: d.config.keep };
        }),
    }),
  ];
}
