import type Docker from 'dockerode';
import { changesOf } from './container-changes.js';
import { execInContainer } from './container-exec.js';
import { lastLogLines } from './container-logs.js';
import {
  EngineError,
  engineMessage,
  type CommitOptions,
  type ContainerCreateBody,
  type ContainerDetails,
  type ContainerFilters,
  type ContainerSummary,
  type EngineFailureKind,
  type Engine,
  type BuildOptions,
  type EngineMessage,
  type ImageDetails,
  type ImageListItem,
  type ImageRemoval,
  type ImageUsage,
  type LogTail,
  type RegistryAuth,
} from './engine.js';

/**
 * The Engine port over dockerode. `client` is read at each call (the link's `required()`): an
 * engine that is away fails with docker_unavailable before anything is sent, as it always did.
 * This file is the one place that reads Engine API status codes for the loop and the updates.
 */
export class DockerodeEngine implements Engine {
  /**
   * `parser`: the client whose modem reads progress streams, needing no engine (a stream already
   * open is read to its end even when the link has just marked the engine away).
   */
  constructor(
    private readonly client: () => Docker,
    private readonly parser: () => Docker = client,
  ) {}

  async listContainers(filters: ContainerFilters = {}): Promise<ContainerSummary[]> {
    const list = await translated(() => this.client().listContainers({ all: true, filters: { ...filters } }));
    return list as unknown as ContainerSummary[];
  }

  async inspectContainer(id: string, options: { size?: boolean } = {}): Promise<ContainerDetails | undefined> {
    try {
      const container = this.client().getContainer(id);
      // The typings omit `size` (GET /containers/{id}/json?size=true: SizeRw).
      const inspect = container.inspect.bind(container) as unknown as (o: { size?: boolean }) => Promise<unknown>;
      const query = options.size ? { size: true } : {};
      return (await translated(() => inspect(query))) as ContainerDetails;
    } catch (err) {
      if (err instanceof EngineError && err.kind === 'not_found') return undefined;
      throw err;
    }
  }

  async createContainer(options: ContainerCreateBody): Promise<string> {
    const created = await translated(() => this.client().createContainer(options));
    return created.id;
  }

  async startContainer(id: string): Promise<'started' | 'already_running'> {
    try {
      await translated(() => this.client().getContainer(id).start());
      return 'started';
    } catch (err) {
      if (err instanceof EngineError && err.kind === 'not_modified') return 'already_running';
      throw err;
    }
  }

  async stopContainer(id: string, seconds?: number): Promise<'stopped' | 'already_stopped' | 'gone'> {
    try {
      const container = this.client().getContainer(id);
      await translated(() => (seconds === undefined ? container.stop() : container.stop({ t: seconds })));
      return 'stopped';
    } catch (err) {
      if (err instanceof EngineError && err.kind === 'not_modified') return 'already_stopped';
      if (err instanceof EngineError && err.kind === 'not_found') return 'gone';
      throw err;
    }
  }

  async restartContainer(id: string, seconds?: number): Promise<void> {
    const container = this.client().getContainer(id);
    await translated(() => (seconds === undefined ? container.restart() : container.restart({ t: seconds })));
  }

  async renameContainer(id: string, name: string): Promise<void> {
    await translated(() => this.client().getContainer(id).rename({ name }));
  }

  async removeContainer(id: string): Promise<'removed' | 'gone'> {
    try {
      await translated(() => this.client().getContainer(id).remove({ force: true }));
      return 'removed';
    } catch (err) {
      if (err instanceof EngineError && err.kind === 'not_found') return 'gone';
      throw err;
    }
  }

  async containerChanges(id: string): ReturnType<Engine['containerChanges']> {
    const container = this.client().getContainer(id);
    const info = (await translated(() => container.inspect())) as { Mounts?: Array<{ Destination: string }> };
    return translated(() => changesOf(container, info.Mounts ?? []));
  }

  async commitContainer(id: string, options: CommitOptions): Promise<void> {
    await translated(() =>
      this.client()
        .getContainer(id)
        .commit({ ...options }),
    );
  }

  execInContainer(
    id: string,
    cmd: string[],
    options: { user?: string; limit?: number } = {},
  ): ReturnType<Engine['execInContainer']> {
    return translated(() => execInContainer(this.client().getContainer(id), cmd, options));
  }

  async containerArchive(id: string, path: string): Promise<NodeJS.ReadableStream> {
    const stream = await translated(() => this.client().getContainer(id).getArchive({ path }));
    return stream as unknown as NodeJS.ReadableStream;
  }

  lastLogLines(id: string, options: { tail: number; tty: boolean; limitBytes: number }): Promise<LogTail> {
    return translated(() => lastLogLines(this.client().getContainer(id), options));
  }

  async inspectImage(reference: string): Promise<ImageDetails | undefined> {
    try {
      return (await translated(() => this.client().getImage(reference).inspect())) as unknown as ImageDetails;
    } catch (err) {
      if (err instanceof EngineError && err.kind === 'not_found') return undefined;
      throw err;
    }
  }

  async tagImage(reference: string, repo: string, tag: string): Promise<void> {
    await translated(() => this.client().getImage(reference).tag({ repo, tag }));
  }

  async imageDiskUsage(): Promise<ImageUsage[]> {
    const df = (await translated(() => this.client().df())) as { Images?: ImageUsage[] | null };
    return df.Images ?? [];
  }

  async listImages(filters: { label?: string[] } = {}): Promise<ImageListItem[]> {
    const list = await translated(() => this.client().listImages({ filters: { ...filters } }));
    return list as unknown as ImageListItem[];
  }

  async imageHistory(reference: string): Promise<Array<{ Size: number }>> {
    return (await translated(() => this.client().getImage(reference).history())) as Array<{ Size: number }>;
  }

  async removeImage(reference: string, options: { force?: boolean; noprune?: boolean } = {}): Promise<ImageRemoval[]> {
    const answer: unknown = await translated(() =>
      this.client()
        .getImage(reference)
        .remove({ ...options }),
    );
    return Array.isArray(answer) ? (answer as ImageRemoval[]) : [];
  }

  async pullImage(reference: string, auth?: RegistryAuth): Promise<NodeJS.ReadableStream> {
    const options = auth ? { authconfig: { ...auth } } : {};
    return (await translated(() => this.client().pull(reference, options))) as NodeJS.ReadableStream;
  }

  async pushImage(
    reference: string,
    options: { tag: string; auth: RegistryAuth | Record<string, never> },
  ): Promise<NodeJS.ReadableStream> {
    const image = this.client().getImage(reference);
    const stream = await translated(() => image.push({ tag: options.tag, authconfig: { ...options.auth } }));
    return stream as NodeJS.ReadableStream;
  }

  async buildImage(context: NodeJS.ReadableStream, options: BuildOptions): Promise<NodeJS.ReadableStream> {
    return (await translated(() => this.client().buildImage(context, { ...options }))) as NodeJS.ReadableStream;
  }

  async loadImage(input: NodeJS.ReadableStream): Promise<NodeJS.ReadableStream> {
    return (await translated(() => this.client().loadImage(input, { quiet: true }))) as NodeJS.ReadableStream;
  }

  async importImage(
    input: NodeJS.ReadableStream,
    options: { repo: string; tag: string },
  ): Promise<NodeJS.ReadableStream> {
    const stream = await translated(() => this.client().importImage(input, { ...options }));
    return stream as unknown as NodeJS.ReadableStream;
  }

  async saveImage(reference: string): Promise<NodeJS.ReadableStream> {
    return (await translated(() => this.client().getImage(reference).get())) as NodeJS.ReadableStream;
  }

  followProgress(
    stream: NodeJS.ReadableStream,
    onFinished: (err: Error | null) => void,
    onMessage: (message: EngineMessage) => void,
  ): void {
    this.parser().modem.followProgress(stream, onFinished, onMessage);
  }
}

/** Runs one engine call; an answer with an error status becomes an EngineError of its kind. */
async function translated<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const status = (err as { statusCode?: unknown } | null)?.statusCode;
    if (typeof status !== 'number') throw err;
    const message = (err as Error).message ?? String(err);
    throw new EngineError(failureKind(status), status, message, engineMessage(err), { cause: err });
  }
}

/** The kind of an Engine API status code. */
function failureKind(statusCode: number): EngineFailureKind {
  if (statusCode === 304) return 'not_modified';
  if (statusCode === 404) return 'not_found';
  if (statusCode === 409) return 'conflict';
  return 'refused';
}
