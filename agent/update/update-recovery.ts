import type Docker from 'dockerode';
import { AgentError } from '../core/errors.js';
import type { JournalEntry } from './update-journal.js';

/**
 * Finishes or undoes a swap from its journal entry, whatever step it reached: past
 * verification, the old container goes; before it, the new one goes and the old one comes back
 * under its name, running. Every action is safe to repeat (an agent may die here too), so the
 * end is always exactly one container of that name, running.
 */
export async function recoverFromJournal(
  docker: Docker,
  entry: JournalEntry,
): Promise<'completed' | 'rolledback' | 'untouched'> {
  // Only the old container's work was being saved: it was never stopped, nothing to undo.
  if (entry.step === 'preparing') return 'untouched';
  if (entry.step === 'verified') {
    await removeIfExists(docker, entry.from.containerId);
    return 'completed';
  }
  // The new container, whether or not the journal lived to learn its id, holds the name.
  const holders = await docker.listContainers({ all: true, filters: { name: [`^/${entry.container}$`] } });
  for (const holder of holders) if (holder.Id !== entry.from.containerId) await removeIfExists(docker, holder.Id);
  if (entry.newContainerId && entry.newContainerId !== entry.from.containerId) await removeIfExists(docker, entry.newContainerId);
  const old = docker.getContainer(entry.from.containerId);
  let info: { Name: string; State: { Running: boolean } };
  try {
    info = (await old.inspect()) as typeof info;
  } catch (err) {
    throw new AgentError('recovery_failed', `the old container of ${entry.container} (${entry.from.containerId.slice(0, 12)}) is gone; the containers loop will create ${entry.container} again: ${(err as Error).message}`);
  }
  if (info.Name !== `/${entry.container}`) await old.rename({ name: entry.container });
  if (!info.State.Running) {
    try {
      await old.start();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 304) throw err;
    }
  }
  return 'rolledback';
}

async function removeIfExists(docker: Docker, id: string): Promise<void> {
  try {
    await docker.getContainer(id).remove({ force: true });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
}
