import type Docker from 'dockerode';
import { changesOf } from './container-changes.js';
import { execInContainer } from './container-exec.js';
import { lastLogLines } from './container-logs.js';
import {
  EngineError,
  engineMessage,
  failureKind,
  type CommitOptions,
  type ContainerCreateBody,
  type ContainerDetails,
  type ContainerFilters,
  type ContainerSummary,
  type Engine,
  type ImageDetails,
  type LogTail,
} from './engine.js';

/**
 * The Engine port over dockerode. `client` is read at each call (the link's `required()`): an
 * engine that is away fails with docker_unavailable before anything is sent, as it always did.
 * This file is the one place that reads Engine API status codes for the loop and the updates.
 */
export class DockerodeEngine implements Engine {
  constructor(private readonly client: () => Docker) {}

  async listContainers(filters: ContainerFilters = {}): Promise<ContainerSummary[]> {
    const list = await translated(() => this.client().listContainers({ all: true, filters: { ...filters } }));
    return list as unknown as ContainerSummary[];
  }

  async inspectContainer(id: string): Promise<ContainerDetails | undefined> {
    try {
      return (await translated(() => this.client().getContainer(id).inspect())) as unknown as ContainerDetails;
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
