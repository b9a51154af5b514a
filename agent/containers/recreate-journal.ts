import { join } from 'node:path';
import type { ContainerSummary, Engine } from '../docker/engine.js';
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
export async function settleReplaced(engine: Engine, name: string, aside: string): Promise<Settled> {
  const old = await managedByName(engine, aside);
  if (!old) return 'nothing';
  const current = await managedByName(engine, name);
  if (current?.State === 'running') {
    await engine.removeContainer(old.Id);
    return 'completed';
  }
  if (current) await engine.removeContainer(current.Id);
  await engine.renameContainer(old.Id, name);
  await engine.startContainer(old.Id);
  return 'restored';
}

/** Every managed container still under a <name>-replaced-* name, with the name it had. */
export async function leftAside(engine: Engine): Promise<Array<{ name: string; aside: string }>> {
  const list = await engine.listContainers({ label: [`${LABELS.managed}=true`] });
  const out: Array<{ name: string; aside: string }> = [];
  for (const c of list) {
    const aside = (c.Names[0] ?? '').replace(/^\//, '');
    const match = ASIDE.exec(aside);
    if (match && c.Labels[LABELS.name] === match[1]) out.push({ name: match[1]!, aside });
  }
  return out;
}

async function managedByName(engine: Engine, name: string): Promise<ContainerSummary | undefined> {
  const list = await engine.listContainers({ label: [`${LABELS.managed}=true`] });
  return list.find((c) => c.Names.includes(`/${name}`));
}
