import type { AgentConfig } from '../config/types.js';
import { defineCommand, type CommandDefinition } from '../commands/command.js';
import type { ContainersModule } from '../containers/containers-module.js';
import { allowedReference } from '../images/image-reference.js';
import type { Updater } from '../update/updater.js';
import type { SnapshotArgs, Snapshotter } from './snapshotter.js';

/** snapshot, snapshots, restore: a restore is an update to the snapshot, with its verification and rollback. */
export function snapshotCommands(d: { config: Pick<AgentConfig, 'snapshots' | 'images'>; snapshotter: Snapshotter; containers: ContainersModule; updater: Updater }): CommandDefinition[] {
  return [
    defineCommand<SnapshotArgs, unknown>({
      name: 'snapshot',
      lane: 'long',
      run: async (args, ctx) => d.snapshotter.take(args, { requestId: ctx.requestId, progress: (f) => ctx.progress(f, 'snapshot.progress') }),
    }),
    defineCommand({ name: 'snapshots', run: async () => d.snapshotter.refreshState() }),
    defineCommand<{ container: string; image: string }, unknown>({
      name: 'restore',
      lane: 'long',
      run: async ({ container, image }, ctx) => {
        d.containers.specOf(container);
        // The robot's own snapshot repository is allowed to run, as are the images it may pull.
        const ref = allowedReference(image, [...d.config.images.allow, `${d.config.snapshots.repository}:*`], `images.allow and snapshots.repository`);
        d.updater.history.rolledBack.delete(container);
        const outcome = d.updater.run({ container, image: ref.familiar, reason: 'restore', force: true, requestId: ctx.requestId });
        await d.containers.pinImage(container, ref.familiar);
        return outcome;
      },
    }),
  ];
}
