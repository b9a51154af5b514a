import { AgentError } from '../core/errors.js';
import type { Engine } from '../docker/engine.js';
import type { JournalEntry } from './update-journal.js';

/**
 * Finishes or undoes a swap from its journal entry, whatever step it reached: past
 * verification, the old container goes; before it, the new one goes and the old one comes back
 * under its name, running. Every action is safe to repeat (an agent may die here too), so the
 * end is always exactly one container of that name, running.
 */
export async function recoverFromJournal(
  engine: Engine,
  entry: JournalEntry,
): Promise<'completed' | 'rolledback' | 'untouched'> {
  // Only the old container's work was being saved: it was never stopped, nothing to undo.
  if (entry.step === 'preparing') return 'untouched';
  if (entry.step === 'verified') {
    await engine.removeContainer(entry.from.containerId);
    return 'completed';
  }
  // The new container, whether or not the journal lived to learn its id, holds the name.
  const holders = await engine.listContainers({ name: [`^/${entry.container}$`] });
  for (const holder of holders) if (holder.Id !== entry.from.containerId) await engine.removeContainer(holder.Id);
  if (entry.newContainerId && entry.newContainerId !== entry.from.containerId) await engine.removeContainer(entry.newContainerId);
  const oldId = entry.from.containerId;
  const info = await engine.inspectContainer(oldId);
  if (!info) {
    const message =
      `the old container of ${entry.container} (${oldId.slice(0, 12)}) is gone; ` +
      `the containers loop will create ${entry.container} again: no such container: ${oldId}`;
    throw new AgentError('recovery_failed', message);
  }
  if (info.Name !== `/${entry.container}`) await engine.renameContainer(oldId, entry.container);
  if (!info.State.Running) await engine.startContainer(oldId);
  return 'rolledback';
}
