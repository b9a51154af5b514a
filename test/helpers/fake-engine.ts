import { randomBytes } from 'node:crypto';
import type { ContainerChange } from '../../agent/docker/container-changes.js';
import type { ExecResult } from '../../agent/docker/container-exec.js';
import {
  EngineError,
  type CommitOptions,
  type ContainerCreateBody,
  type ContainerDetails,
  type ContainerFilters,
  type ContainerStatus,
  type ContainerSummary,
  type Engine,
  type ImageDetails,
  type LogTail,
} from '../../agent/docker/engine.js';

/** One container as the fake engine keeps it. */
export interface FakeContainer {
  id: string;
  name: string;
  image: string;
  imageId: string;
  labels: Record<string, string>;
  env: string[];
  status: ContainerStatus;
  startedAt: string;
  exitCode: number;
  restartCount: number;
  tty: boolean;
  changes: ContainerChange[];
  logs: string[];
}

export type FakeOperation = keyof Engine;

const NEVER = '0001-01-01T00:00:00Z';

/** An engine answer with an error status, as the port hands it on (dockerode-engine.ts). */
function refusal(kind: 'not_found' | 'conflict' | 'refused', status: number, said: string): EngineError {
  return new EngineError(kind, status, `(HTTP code ${status}) unexpected - ${said}`, said);
}

/**
 * An in-memory Docker engine behind the Engine port, for unit tests of what changes containers
 * (no rig): it answers as dockerd does where the agent cares (a taken name is a conflict, a start
 * of a running container is already_running, a removed one is gone), records every call, fails
 * a chosen call on demand, and can be copied as it is at any instant (a crash point).
 */
export class FakeEngine implements Engine {
  containers = new Map<string, FakeContainer>();
  /** Image references and their ids. */
  images = new Map<string, string>();
  readonly calls: Array<{ op: FakeOperation; args: unknown[] }> = [];
  /** Called before each operation runs; throw from it to fail that call. */
  before: ((op: FakeOperation, args: unknown[]) => void) | undefined;
  /** What an exec answers (the update's probe). */
  execResult: ExecResult = { exitCode: 0, stdout: '', stderr: '' };
  /** The status a container takes when started (a crashing image: 'exited'). */
  startsAs: (c: FakeContainer) => ContainerStatus = () => 'running';

  addImage(reference: string, id = `sha256:${randomBytes(32).toString('hex')}`): string {
    this.images.set(reference, id);
    return id;
  }

  /** The same engine as it is now, detached: what a restarted agent finds after a crash here. */
  clone(): FakeEngine {
    const copy = new FakeEngine();
    copy.images = new Map(this.images);
    copy.containers = new Map([...this.containers].map(([id, c]) => [id, structuredClone(c)]));
    copy.execResult = this.execResult;
    copy.startsAs = this.startsAs;
    return copy;
  }

  byName(name: string): FakeContainer | undefined {
    return [...this.containers.values()].find((c) => c.name === name);
  }

  /** Fails the next call of `op` (matching `when`) with an engine error of that status. */
  failNext(op: FakeOperation, status = 500, when: (args: unknown[]) => boolean = () => true): void {
    const previous = this.before;
    let armed = true;
    this.before = (o, args) => {
      previous?.(o, args);
      if (armed && o === op && when(args)) {
        armed = false;
        const kind = status === 409 ? 'conflict' : status === 404 ? 'not_found' : 'refused';
        throw refusal(kind, status, `fake engine refused ${op}`);
      }
    };
  }

  private enter(op: FakeOperation, args: unknown[]): void {
    this.calls.push({ op, args });
    this.before?.(op, args);
  }

  private find(id: string): FakeContainer {
    const c = this.containers.get(id) ?? [...this.containers.values()].find((x) => x.name === id);
    if (!c) throw refusal('not_found', 404, `No such container: ${id}`);
    return c;
  }

  async listContainers(filters: ContainerFilters = {}): Promise<ContainerSummary[]> {
    this.enter('listContainers', [filters]);
    return [...this.containers.values()]
      .filter((c) =>
        (filters.label ?? []).every((l) => {
          const [k, v] = l.split('=');
          return v === undefined ? k! in c.labels : c.labels[k!] === v;
        }),
      )
      .filter((c) => (filters.name ?? []).every((n) => new RegExp(n).test(`/${c.name}`)))
      .filter((c) => !filters.status || filters.status.includes(c.status))
      .map((c) => ({
        Id: c.id,
        Names: [`/${c.name}`],
        Image: c.image,
        ImageID: c.imageId,
        Labels: { ...c.labels },
        State: c.status,
      }));
  }

  async inspectContainer(id: string): Promise<ContainerDetails | undefined> {
    this.enter('inspectContainer', [id]);
    const c = this.containers.get(id) ?? [...this.containers.values()].find((x) => x.name === id);
    if (!c) return undefined;
    return {
      Id: c.id,
      Name: `/${c.name}`,
      Image: c.imageId,
      RestartCount: c.restartCount,
      Config: { Image: c.image, Labels: { ...c.labels }, Tty: c.tty },
      State: { Status: c.status, Running: c.status === 'running', ExitCode: c.exitCode, StartedAt: c.startedAt },
      HostConfig: { Devices: [] },
      Mounts: [],
    };
  }

  async createContainer(options: ContainerCreateBody): Promise<string> {
    this.enter('createContainer', [options]);
    const name = options.name ?? randomBytes(4).toString('hex');
    if (this.byName(name)) {
      throw refusal('conflict', 409, `Conflict. The container name "/${name}" is already in use`);
    }
    const imageId = this.images.get(options.Image ?? '');
    if (!imageId) throw refusal('not_found', 404, `No such image: ${options.Image}`);
    const id = randomBytes(32).toString('hex');
    this.containers.set(id, {
      id,
      name,
      image: options.Image!,
      imageId,
      labels: { ...(options.Labels ?? {}) },
      env: [...(options.Env ?? [])],
      status: 'created',
      startedAt: NEVER,
      exitCode: 0,
      restartCount: 0,
      tty: options.Tty ?? false,
      changes: [],
      logs: [],
    });
    return id;
  }

  async startContainer(id: string): Promise<'started' | 'already_running'> {
    this.enter('startContainer', [id]);
    const c = this.find(id);
    if (c.status === 'running') return 'already_running';
    c.status = this.startsAs(c);
    c.startedAt = new Date().toISOString();
    c.exitCode = c.status === 'exited' ? 1 : 0;
    return 'started';
  }

  async stopContainer(id: string, seconds?: number): Promise<'stopped' | 'already_stopped' | 'gone'> {
    this.enter('stopContainer', [id, seconds]);
    const c = this.containers.get(id);
    if (!c) return 'gone';
    if (c.status !== 'running') return 'already_stopped';
    c.status = 'exited';
    return 'stopped';
  }

  async restartContainer(id: string, seconds?: number): Promise<void> {
    this.enter('restartContainer', [id, seconds]);
    const c = this.find(id);
    c.status = 'running';
    c.startedAt = new Date().toISOString();
  }

  async renameContainer(id: string, name: string): Promise<void> {
    this.enter('renameContainer', [id, name]);
    const c = this.find(id);
    const holder = this.byName(name);
    if (holder && holder !== c) {
      throw refusal('conflict', 409, `Conflict. The name "/${name}" is already in use`);
    }
    c.name = name;
  }

  async removeContainer(id: string): Promise<'removed' | 'gone'> {
    this.enter('removeContainer', [id]);
    return this.containers.delete(id) ? 'removed' : 'gone';
  }

  async containerChanges(id: string): Promise<ContainerChange[]> {
    this.enter('containerChanges', [id]);
    return [...this.find(id).changes];
  }

  async commitContainer(id: string, options: CommitOptions): Promise<void> {
    this.enter('commitContainer', [id, options]);
    this.find(id);
    this.addImage(`${options.repo}:${options.tag}`);
  }

  async execInContainer(id: string, cmd: string[]): Promise<ExecResult> {
    this.enter('execInContainer', [id, cmd]);
    this.find(id);
    return this.execResult;
  }

  async lastLogLines(id: string, options: { tail: number }): Promise<LogTail> {
    this.enter('lastLogLines', [id, options]);
    return { lines: this.find(id).logs.slice(-options.tail), truncated: false };
  }

  async inspectImage(reference: string): Promise<ImageDetails | undefined> {
    this.enter('inspectImage', [reference]);
    const id = this.images.get(reference) ?? ([...this.images.values()].includes(reference) ? reference : undefined);
    return id ? { Id: id, RepoTags: [...this.images].filter(([, v]) => v === id).map(([k]) => k) } : undefined;
  }

  async tagImage(reference: string, repo: string, tag: string): Promise<void> {
    this.enter('tagImage', [reference, repo, tag]);
    const id = (await this.inspectImage(reference))?.Id;
    if (!id) throw refusal('not_found', 404, `No such image: ${reference}`);
    this.images.set(`${repo}:${tag}`, id);
  }
}
