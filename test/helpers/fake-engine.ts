import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
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
  type EngineMessage,
  type ImageDetails,
  type ImageListItem,
  type ImageRemoval,
  type ImageUsage,
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
  /** What GET /containers/{id}/archive answers per path (the tar's bytes, here just the content). */
  files?: Record<string, string>;
  sizeRw?: number;
}

/** What the fake keeps of an image beyond its names (FakeEngine.images). */
export interface FakeImage {
  labels: Record<string, string>;
  parentId: string;
  /** Seconds since the epoch. */
  created: number;
  size: number;
  /** The newest layer's bytes (history[0]). */
  layerSize: number;
  layers: string[];
  digests: string[];
}

/** The engine's progress streams, by the operation that opens one. */
export type FakeStreamOperation = 'pullImage' | 'pushImage' | 'buildImage' | 'loadImage' | 'importImage';

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
  /** Per image id: labels, parent, sizes (an image without one has none of them). */
  imageInfo = new Map<string, FakeImage>();
  /**
   * The messages each progress stream carries, in order (default: none). An `error` message is
   * the operation's failure as the engine reports it, in the stream.
   */
  streams: Partial<Record<FakeStreamOperation, EngineMessage[]>> = {};
  /** The image a pull, build or import makes, by the reference asked for (default: a new id). */
  madeBy: (op: FakeStreamOperation, reference: string) => string | undefined = () => undefined;
  /** What `docker save` writes. */
  saved = 'fake image tar';
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
    copy.imageInfo = new Map([...this.imageInfo].map(([id, i]) => [id, structuredClone(i)]));
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

  async inspectContainer(id: string, options: { size?: boolean } = {}): Promise<ContainerDetails | undefined> {
    this.enter('inspectContainer', options.size ? [id, options] : [id]);
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
      ...(options.size ? { SizeRw: c.sizeRw ?? 0 } : {}),
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
    const c = this.find(id);
    const imageId = this.addImage(`${options.repo}:${options.tag ?? 'latest'}`);
    const parent = this.imageInfo.get(c.imageId);
    this.imageInfo.set(imageId, {
      labels: { ...(parent?.labels ?? {}), ...labelsOf(options.changes ?? '') },
      parentId: c.imageId,
      created: Math.floor(Date.now() / 1000),
      size: (parent?.size ?? 0) + (c.sizeRw ?? 0),
      layerSize: c.sizeRw ?? 0,
      layers: [...(parent?.layers ?? []), `sha256:${randomBytes(32).toString('hex')}`],
      digests: [],
    });
  }

  async containerArchive(id: string, path: string): Promise<NodeJS.ReadableStream> {
    this.enter('containerArchive', [id, path]);
    const content = this.find(id).files?.[path];
    if (content === undefined) throw refusal('not_found', 404, `Could not find the file ${path} in container ${id}`);
    return Readable.from([Buffer.from(content)]);
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
    const id = this.imageId(reference);
    if (!id) return undefined;
    const info = this.imageInfo.get(id);
    return {
      Id: id,
      RepoTags: this.tagsOf(id),
      ...(info
        ? {
            RepoDigests: [...info.digests],
            Size: info.size,
            Created: new Date(info.created * 1000).toISOString(),
            Config: { Labels: { ...info.labels } },
            RootFS: { Layers: [...info.layers] },
          }
        : {}),
    };
  }

  async tagImage(reference: string, repo: string, tag: string): Promise<void> {
    this.enter('tagImage', [reference, repo, tag]);
    const id = this.imageId(reference);
    if (!id) throw refusal('not_found', 404, `No such image: ${reference}`);
    this.images.set(`${repo}:${tag}`, id);
  }

  async imageDiskUsage(): Promise<ImageUsage[]> {
    this.enter('imageDiskUsage', []);
    return [...new Set(this.images.values())].map((id) => {
      const info = this.imageInfo.get(id);
      return {
        Id: id,
        RepoTags: this.tagsOf(id),
        RepoDigests: [...(info?.digests ?? [])],
        Created: info?.created ?? 0,
        Size: info?.size ?? 0,
        SharedSize: 0,
        Containers: [...this.containers.values()].filter((c) => c.imageId === id).length,
      };
    });
  }

  async listImages(filters: { label?: string[] } = {}): Promise<ImageListItem[]> {
    this.enter('listImages', [filters]);
    const ids = [...new Set(this.images.values())];
    return ids
      .map((id) => {
        const info = this.imageInfo.get(id);
        return {
          Id: id,
          ParentId: info?.parentId ?? '',
          RepoTags: this.tagsOf(id),
          Labels: { ...(info?.labels ?? {}) },
          Created: info?.created ?? 0,
          Size: info?.size ?? 0,
        };
      })
      .filter((i) =>
        (filters.label ?? []).every((l) => {
          const [k, v] = l.split('=');
          return v === undefined ? k! in i.Labels : i.Labels[k!] === v;
        }),
      );
  }

  async imageHistory(reference: string): Promise<Array<{ Size: number }>> {
    this.enter('imageHistory', [reference]);
    const id = this.imageId(reference);
    if (!id) throw refusal('not_found', 404, `No such image: ${reference}`);
    return [{ Size: this.imageInfo.get(id)?.layerSize ?? 0 }];
  }

  /** As dockerd: a name goes; the image with its last one, unless a container uses it (conflict). */
  async removeImage(reference: string, options: { force?: boolean } = {}): Promise<ImageRemoval[]> {
    this.enter('removeImage', [reference, options]);
    const id = this.imageId(reference);
    if (!id) throw refusal('not_found', 404, `No such image: ${reference}`);
    const names = this.images.has(reference) ? [reference] : this.tagsOf(id);
    const last = this.tagsOf(id).length === names.length;
    const user = [...this.containers.values()].find((c) => c.imageId === id);
    if (last && user && !options.force) {
      const said =
        `conflict: unable to remove repository reference "${reference}" (must force) - ` +
        `container ${user.id.slice(0, 12)} is using its referenced image ${id.slice(7, 19)}`;
      throw refusal('conflict', 409, said);
    }
    for (const name of names) this.images.delete(name);
    if (!last) return names.map((n) => ({ Untagged: n }));
    this.imageInfo.delete(id);
    return [...names.map((n) => ({ Untagged: n })), { Deleted: id }];
  }

  async pullImage(reference: string, auth?: unknown): Promise<NodeJS.ReadableStream> {
    this.enter('pullImage', auth === undefined ? [reference] : [reference, auth]);
    return this.progressOf('pullImage', reference);
  }

  async pushImage(reference: string, options: { tag: string }): Promise<NodeJS.ReadableStream> {
    this.enter('pushImage', [reference, options]);
    if (!this.imageId(reference))
      throw refusal('not_found', 404, `An image does not exist locally with the tag: ${reference}`);
    return this.progressOf('pushImage', reference);
  }

  async buildImage(_context: NodeJS.ReadableStream, options: { t: string }): Promise<NodeJS.ReadableStream> {
    this.enter('buildImage', [options]);
    return this.progressOf('buildImage', options.t);
  }

  async loadImage(_input: NodeJS.ReadableStream): Promise<NodeJS.ReadableStream> {
    this.enter('loadImage', []);
    return this.progressOf('loadImage', '');
  }

  async importImage(
    _input: NodeJS.ReadableStream,
    options: { repo: string; tag: string },
  ): Promise<NodeJS.ReadableStream> {
    this.enter('importImage', [options]);
    return this.progressOf('importImage', `${options.repo}:${options.tag}`);
  }

  async saveImage(reference: string): Promise<NodeJS.ReadableStream> {
    this.enter('saveImage', [reference]);
    if (!this.imageId(reference)) throw refusal('not_found', 404, `No such image: ${reference}`);
    return Readable.from([Buffer.from(this.saved)]);
  }

  /** As docker-modem's: one JSON message a line; the stream's own error ends it. Not an engine call. */
  followProgress(
    stream: NodeJS.ReadableStream,
    onFinished: (err: Error | null) => void,
    onMessage: (message: EngineMessage) => void,
  ): void {
    let buffered = '';
    let finished = false;
    const finish = (err: Error | null) => {
      if (finished) return;
      finished = true;
      onFinished(err);
    };
    stream.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) onMessage(JSON.parse(line) as EngineMessage);
      }
    });
    stream.on('error', (err: Error) => finish(err));
    stream.on('end', () => finish(null));
    stream.on('close', () => finish(null));
  }

  /** The id a reference names: a name, or the id itself. */
  private imageId(reference: string): string | undefined {
    return this.images.get(reference) ?? ([...this.images.values()].includes(reference) ? reference : undefined);
  }

  private tagsOf(id: string): string[] {
    return [...this.images].filter(([, v]) => v === id).map(([k]) => k);
  }

  /**
   * A progress stream of the operation's messages. A pull, build or import that carries no
   * error leaves its image behind (made at once: the engine's is there when its stream ends).
   */
  private progressOf(op: FakeStreamOperation, reference: string): NodeJS.ReadableStream {
    const messages = this.streams[op] ?? [];
    const failed = messages.some((m) => m.error);
    if (!failed && reference && op !== 'pushImage') {
      const id = this.madeBy(op, reference) ?? this.images.get(reference) ?? undefined;
      this.addImage(reference, id);
    }
    return Readable.from(messages.map((m) => `${JSON.stringify(m)}\n`));
  }
}

/** The labels of a commit's `LABEL k="v" ...` change (as the snapshotter writes them). */
function labelsOf(changes: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const m of changes.matchAll(/([^\s=]+)=("(?:[^"\\]|\\.)*")/g)) labels[m[1]!] = JSON.parse(m[2]!) as string;
  return labels;
}
