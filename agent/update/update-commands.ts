import type { AgentConfig } from '../config/types.js';
import { defineCommand, type CommandDefinition } from '../commands/command.js';
import type { ContainersModule } from '../containers/containers-module.js';
import { AgentError } from '../core/errors.js';
import { allowedReference } from '../core/image-reference.js';
import type { UpdateCheck } from './update-check.js';
import type { Updater } from './updater.js';

/**
 * update, rollback, update.check. An image chosen here is pinned in the desired state (until
 * the fleet names the container anew), so the reconcile loop keeps what the operator chose.
 */
export function updateCommands(d: {
  config: AgentConfig['images'];
  containers: ContainersModule;
  updater: Updater;
  check: UpdateCheck;
}): CommandDefinition[] {
  return [
    defineCommand({
      name: 'update',
      lane: 'long',
      run: async ({ container, image, force }, ctx) => {
        d.containers.specOf(container);
        const ref = allowedReference(image, d.config.allow);
        if (force) d.updater.askedAnew(container);
        // Pinned by the loop inside the replacement, and only once the update is sure to be tried
        // (journaled): a refusal changes nothing. Outside the window (not forced): pinned at once.
        const pin = () => d.containers.pinImage(container, ref.familiar);
        const job = {
          container,
          image: ref.familiar,
          reason: 'command' as const,
          force: force ?? false,
          pin,
          requestId: ctx.requestId,
        };
        return d.containers.requestUpdate(job);
      },
    }),
    defineCommand({
      name: 'rollback',
      lane: 'long',
      run: async ({ container }, ctx) => {
        d.containers.specOf(container);
        const previous = d.updater.previousImage(container);
        if (!previous)
          throw new AgentError(
            'no_previous',
            `${container} has not been updated by this agent, so there is no previous image to go back to`,
          );
        const target = await d.updater.previousReference(container, previous);
        d.updater.askedAnew(container);
        const pin = () => d.containers.pinImage(container, target);
        const job = { container, image: target, reason: 'rollback' as const, force: true, pin };
        return d.containers.updateNow({ ...job, requestId: ctx.requestId });
      },
    }),
    defineCommand({
      name: 'update.check',
      lane: 'long',
      run: async (_args, ctx) => d.check.checkNow(ctx.requestId),
    }),
  ];
}
