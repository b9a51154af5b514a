import { join } from 'node:path';
import type Docker from 'dockerode';
import { readJsonFile, removeJsonFile, writeJsonFile } from '../state/json-file.js';
import { LABELS } from './container-spec.js';

/** The steps of a recreate, in order. Each is written before it is taken. */
export const RECREATE_STEPS = ['stopping', 'renaming', 'creating', 'starting', 'removing'] as const;
export type RecreateStep = (typeof RECREATE_STEPS)[number];

/** What recovery needs to finish or undo a recreate the agent did not live to complete. */
export interface RecreateEntry {
  container: string;
  step: RecreateStep;
  oldContainerId: string;
  /** The name the old container is kept under while its replacement is made. */
  aside: string;
  newContainerId?: string;
  startedAt: string;
}

/** The recreate journal: one file in state.dir, replaced whole before each step (json-file.ts). */
export class RecreateJournal {
  readonly file: string;

  constructor(dir: string) {
    this.file = join(dir, 'recreate-journal.json');
  }

  read(): RecreateEntry | null {
    const entry = readJsonFile<RecreateEntry>(this.file);
    return entry && typeof entry.container === 'string' && typeof entry.aside === 'string' ? entry : null;
  }

  write(entry: RecreateEntry): void {
    writeJsonFile(this.file, entry);
  }

  clear(): void {
    removeJsonFile(this.file);
  }
}

/** <name>-replaced-<stamp()>: the name a recreate moves the old container aside under. */
const ASIDE = /^(.+)-replaced-\d{8}T\d{9}Z$/;

export type Settled = 'completed' | 'restored' | 'nothing';

/**
 * Settles one container moved aside by a recreate that did not finish: if the new container
 * runs, the old one is removed (the recreate is complete); otherwise the new one, if any, is
 * removed and the old one is put back under its name and started, as it was before.
 */
export async function settleReplaced(docker: Docker, name: string, aside: string): Promise<Settled> {
  const old = await managedByName(docker, aside);
  if (!old) return 'nothing';
  const current = await managedByName(docker, name);
  if (current?.State === 'running') {
    await removeIgnoringGone(docker.getContainer(old.Id));
    return 'completed';
  }
  if (current) await removeIgnoringGone(docker.getContainer(current.Id));
  const back = docker.getContainer(old.Id);
  await back.rename({ name });
  try {
    await back.start();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 304) throw err;
  }
  return 'restored';
}

/** Every managed container still under a <name>-replaced-* name, with the name it had. */
export async function leftAside(docker: Docker): Promise<Array<{ name: string; aside: string }>> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABELS.managed}=true`] } });
  const out: Array<{ name: string; aside: string }> = [];
  for (const c of list) {
    const aside = (c.Names[0] ?? '').replace(/^\//, '');
    const match = ASIDE.exec(aside);
    if (match && c.Labels[LABELS.name] === match[1]) out.push({ name: match[1]!, aside });
  }
  return out;
}

async function managedByName(docker: Docker, name: string): Promise<Docker.ContainerInfo | undefined> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABELS.managed}=true`] } });
  return list.find((c) => c.Names.includes(`/${name}`));
}

async function removeIgnoringGone(container: Docker.Container): Promise<void> {
  try {
    await container.remove({ force: true });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
}
