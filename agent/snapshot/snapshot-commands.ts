import type { AgentConfig } from '../config/types.js';
import { defineCommand, type CommandDefinition } from '../commands/command.js';
import type { ContainersModule } from '../containers/containers-module.js';
import { AgentError } from '../core/errors.js';
import { isAllowed, parseImageReference } from '../core/image-reference.js';
import type { Updater } from '../update/updater.js';
import type { Snapshotter } from './snapshotter.js';

/** snapshot, snapshots, restore: a restore is an update to the snapshot, with its verification and rollback. */
export function snapshotCommands(d: {
  config: Pick<AgentConfig, 'snapshots' | 'images'>;
  snapshotter: Snapshotter;
  containers: ContainersModule;
  updater: Updater;
}): CommandDefinition[] {
  return [
    defineCommand({
      name: 'snapshot',
      lane: 'long',
      run: async (args, ctx) =>
        d.snapshotter.take(args, { requestId: ctx.requestId, progress: (f) => ctx.progress(f, 'snapshot.progress') }),
    }),
    defineCommand({ name: 'snapshots', run: async () => d.snapshotter.refreshState() }),
    defineCommand({
      name: 'restore',
      lane: 'long',
      run: async ({ container, image }, ctx) => {
        d.containers.specOf(container);
        // What may run: images.allow, or a snapshot this robot committed itself (by its recorded
        // image id, present here). A name in snapshots.repository alone proves nothing: anyone
        // who can push there, or label an image, could make one.
        const ref = parseImageReference(image);
        const own = await d.snapshotter.isOwnSnapshot(ref);
        if (!isAllowed(ref, d.config.images.allow) && !own) {
          throw new AgentError(
            'not_allowed',
            `${ref.familiar} is not allowed on this robot: restore runs images images.allow allows, ` +
              `or snapshots this robot committed in ${d.config.snapshots.repository} that are still here`,
          );
        }
        d.updater.askedAnew(container);
        // Pinned by the loop once the restore is sure to be tried (as for update).
        const pin = () => d.containers.pinImage(container, ref.familiar);
        // images.verify covers what comes from a registry; this robot's own commit is its own.
        const job = { container, image: ref.familiar, reason: 'restore' as const, force: true, pin, ownImage: own };
        return d.containers.updateNow({ ...job, requestId: ctx.requestId });
      },
    }),
  ];
}
