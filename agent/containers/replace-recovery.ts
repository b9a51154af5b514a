import { AgentError } from '../core/errors.js';
import type { ContainerSummary, Engine } from '../docker/engine.js';
import { LABELS } from './container-spec.js';
import type { ReplaceEntry } from './replace-journal.js';

export type Settled = 'completed' | 'rolledback' | 'untouched';

/**
 * Finishes or undoes a replacement from its journal entry, whatever step it reached (an update,
 * a recreate, a restore alike; created ahead or after the stop): past the point of no return
 * (verified, removing) the old container goes; before it, the new one goes (by its id, by the
 * name and by its temporary name) and the old one comes back under its name, running. Every
 * action is safe to repeat (an agent may die here too), so the end is always exactly one
 * container of that name, running.
 */
export async function settleReplacement(engine: Engine, entry: ReplaceEntry): Promise<Settled> {
  // Only the old container's work was being saved: it was never stopped, nothing to undo.
  if (entry.step === 'preparing') return 'untouched';
  const oldId = entry.from.containerId;
  if (entry.step === 'verified' || entry.step === 'removing') {
    await engine.removeContainer(oldId);
    return 'completed';
  }
  // The new container, whether or not the journal lived to learn its id, holds the name (made
  // after the stop) or the temporary name (made ahead).
  for (const name of [entry.container, ...(entry.next ? [entry.next] : [])]) {
    const holders = await engine.listContainers({ name: [`^/${name}$`] });
    for (const holder of holders) if (holder.Id !== oldId) await engine.removeContainer(holder.Id);
  }
  if (entry.newContainerId && entry.newContainerId !== oldId) await engine.removeContainer(entry.newContainerId);
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

/** <name>-replaced-<stamp()>: the name a recreate moves the old container aside under. */
const ASIDE = /^(.+)-replaced-\d{8}T\d{9}Z$/;
/** <name>-next-<stamp()>: the name a replacement creates the new container under, before the stop. */
const NEXT = /^(.+)-next-\d{8}T\d{9}Z$/;

/** The temporary name of a container's replacement: sortable, to the millisecond, valid in names. */
export function temporaryName(container: string, at = new Date()): string {
  return `${container}-next-${at.toISOString().replace(/[-:.]/g, '')}`;
}

/**
 * A container left under another name that no journal speaks of (the journal was lost, or an
 * older agent made it). One a recreate moved aside (<name>-replaced-*): if the container of that
 * name runs, the old one is removed; otherwise the new one, if any, is removed and the old one
 * is put back under its name and started. A replacement created ahead (<name>-next-*): removed
 * ('restored': what holds the name stays), unless it runs and nothing holds the name (the agent
 * died between the renames), then it takes the name ('completed').
 */
export async function settleAside(
  engine: Engine,
  name: string,
  aside: string,
): Promise<'completed' | 'restored' | 'nothing'> {
  const old = await managedByName(engine, aside);
  if (!old) return 'nothing';
  const current = await managedByName(engine, name);
  if (NEXT.test(aside)) {
    if (!current && old.State === 'running') {
      await engine.renameContainer(old.Id, name);
      return 'completed';
    }
    await engine.removeContainer(old.Id);
    return 'restored';
  }
  if (current?.State === 'running') {
    await engine.removeContainer(old.Id);
    return 'completed';
  }
  if (current) await engine.removeContainer(current.Id);
  await engine.renameContainer(old.Id, name);
  await engine.startContainer(old.Id);
  return 'restored';
}

/** Every managed container still under a <name>-replaced-* or <name>-next-* name, with the name it had. */
export async function leftAside(engine: Engine): Promise<Array<{ name: string; aside: string }>> {
  const list = await engine.listContainers({ label: [`${LABELS.managed}=true`] });
  const out: Array<{ name: string; aside: string }> = [];
  for (const c of list) {
    const aside = (c.Names[0] ?? '').replace(/^\//, '');
    const match = ASIDE.exec(aside) ?? NEXT.exec(aside);
    if (match && c.Labels[LABELS.name] === match[1]) out.push({ name: match[1]!, aside });
  }
  return out;
}

async function managedByName(engine: Engine, name: string): Promise<ContainerSummary | undefined> {
  const list = await engine.listContainers({ label: [`${LABELS.managed}=true`] });
  return list.find((c) => c.Names.includes(`/${name}`));
}
