import type Docker from 'dockerode';
import { AgentError } from '../core/errors.js';
import type { ContainerChange } from './container-changes.js';
import type { ExecResult } from './container-exec.js';

/**
 * The Engine port: everything the containers loop and the update flow ask of the Docker engine,
 * typed once. One implementation talks to dockerd (dockerode-engine.ts); the unit tests use an
 * in-memory one (test/helpers/fake-engine.ts). Engine API status codes are read in one place,
 * the implementation: what callers see is a typed outcome ('already_running', 'gone',
 * undefined for a container that is not there) or an EngineError with its `kind`.
 */
export interface Engine {
  /** Containers, stopped ones too, by Engine API filters (label, name, status). */
  listContainers(filters?: ContainerFilters): Promise<ContainerSummary[]>;
  /**
   * undefined: no such container (it may have been removed between a list and this). `size`:
   * with SizeRw, the bytes of its writable layer (the engine has to measure it: slower).
   */
  inspectContainer(id: string, options?: { size?: boolean }): Promise<ContainerDetails | undefined>;
  /** The new container's id. Fails with kind `conflict` (name taken) or `not_found` (no such image). */
  createContainer(options: ContainerCreateBody): Promise<string>;
  startContainer(id: string): Promise<'started' | 'already_running'>;
  /** `seconds` undefined: the engine waits the container's own StopTimeout. */
  stopContainer(id: string, seconds?: number): Promise<'stopped' | 'already_stopped' | 'gone'>;
  restartContainer(id: string, seconds?: number): Promise<void>;
  /** Fails with kind `conflict` when the name is taken, `not_found` when the container is gone. */
  renameContainer(id: string, name: string): Promise<void>;
  /** Forced: a running container is killed first. */
  removeContainer(id: string): Promise<'removed' | 'gone'>;
  /** `docker diff`, less the mount points Docker made (see container-changes.ts). */
  containerChanges(id: string): Promise<ContainerChange[]>;
  commitContainer(id: string, options: CommitOptions): Promise<void>;
  execInContainer(id: string, cmd: string[], options?: { user?: string; limit?: number }): Promise<ExecResult>;
  /** A tar of one path in a container (GET /containers/{id}/archive): what a file holds, not just that it changed. */
  containerArchive(id: string, path: string): Promise<NodeJS.ReadableStream>;
  /** The last lines a container printed, at most limitBytes kept (container-logs.ts). */
  lastLogLines(id: string, options: { tail: number; tty: boolean; limitBytes: number }): Promise<LogTail>;
  /** undefined: no such image on this robot. */
  inspectImage(reference: string): Promise<ImageDetails | undefined>;
  tagImage(reference: string, repo: string, tag: string): Promise<void>;
  /** Every image with its shared and unique bytes and how many containers use it (`docker system df -v`). */
  imageDiskUsage(): Promise<ImageUsage[]>;
  /** Images, by Engine API filters (label). */
  listImages(filters?: { label?: string[] }): Promise<ImageListItem[]>;
  /** The image's layers, newest first (`docker history`). */
  imageHistory(reference: string): Promise<Array<{ Size: number }>>;
  /** Removes one name (the image when it was its last). Fails with kind `not_found` or `conflict` (in use). */
  removeImage(reference: string, options?: { force?: boolean; noprune?: boolean }): Promise<ImageRemoval[]>;
  /**
   * The progress streams of pull, push, build, load and import: the stream is open once the
   * engine accepted the operation (a refusal before it is an EngineError); the operation's own
   * failure comes in the stream (see followProgress).
   */
  pullImage(reference: string, auth?: RegistryAuth): Promise<NodeJS.ReadableStream>;
  pushImage(
    reference: string,
    options: { tag: string; auth: RegistryAuth | Record<string, never> },
  ): Promise<NodeJS.ReadableStream>;
  buildImage(context: NodeJS.ReadableStream, options: BuildOptions): Promise<NodeJS.ReadableStream>;
  loadImage(input: NodeJS.ReadableStream): Promise<NodeJS.ReadableStream>;
  importImage(input: NodeJS.ReadableStream, options: { repo: string; tag: string }): Promise<NodeJS.ReadableStream>;
  /** `docker save` of one image: the tar, as the engine writes it. */
  saveImage(reference: string): Promise<NodeJS.ReadableStream>;
  /**
   * Reads a progress stream to its end: each JSON message to onMessage, then onFinished (with
   * the error that broke the stream, if one did; an error message in it is onMessage's).
   */
  followProgress(
    stream: NodeJS.ReadableStream,
    onFinished: (err: Error | null) => void,
    onMessage: (message: EngineMessage) => void,
  ): void;
}

/** One image of GET /system/df. */
export interface ImageUsage {
  Id: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  /** Seconds since the epoch. */
  Created: number;
  Size: number;
  /** -1 when the engine did not compute it. */
  SharedSize: number;
  Containers: number;
}

/** One line of DELETE /images/{name}'s answer. */
export interface ImageRemoval {
  Untagged?: string;
  Deleted?: string;
}

/** Credentials for a registry, as the engine takes them (X-Registry-Auth). */
export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress: string;
}

/** POST /build's query, the options the agent sets. */
export interface BuildOptions {
  t: string;
  dockerfile: string;
  networkmode?: string;
  rm: boolean;
  forcerm: boolean;
}

/** One JSON message of the engine's pull, push, build or load streams. */
export interface EngineMessage {
  id?: string;
  status?: string;
  stream?: string;
  error?: string;
  aux?: Record<string, unknown>;
  progressDetail?: { current?: number; total?: number };
}

/** One row of GET /images/json, the fields the agent reads. */
export interface ImageListItem {
  Id: string;
  ParentId: string;
  RepoTags?: string[] | null;
  Labels?: Record<string, string> | null;
  /** Seconds since the epoch. */
  Created: number;
  Size: number;
}

export interface ContainerFilters {
  label?: string[];
  name?: string[];
  status?: string[];
}

/** The Engine API create body (its `name` is the container's name). */
export type ContainerCreateBody = Docker.ContainerCreateOptions;

export interface CommitOptions {
  repo: string;
  tag: string | undefined;
  comment: string;
  pause: boolean;
  author?: string;
  /** Dockerfile instructions applied to the commit ("LABEL k=v ..."). */
  changes?: string;
}

export interface LogTail {
  lines: string[];
  truncated: boolean;
}

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

/** One row of GET /containers/json, the fields the agent reads. */
export interface ContainerSummary {
  Id: string;
  /** With the engine's leading slash: "/ros". */
  Names: string[];
  Image: string;
  ImageID: string;
  Labels: Record<string, string>;
  State?: string;
}

/** GET /containers/{id}/json, the fields the agent reads. */
export interface ContainerDetails {
  Id: string;
  /** With the engine's leading slash: "/ros". */
  Name: string;
  /** The image id the container runs. */
  Image: string;
  RestartCount: number;
  Config: {
    Image: string;
    Labels: Record<string, string> | null;
    Tty: boolean;
    Healthcheck?: { Test?: string[] };
  };
  State: {
    Status: ContainerStatus;
    Running: boolean;
    ExitCode: number;
    StartedAt: string;
    Health?: { Status: string };
  };
  HostConfig: { Devices: Array<{ PathOnHost?: string; PathInContainer: string }> | null };
  Mounts?: Array<{ Destination: string; Type?: string; Source?: string }>;
  /** Only when inspected with `size`. */
  SizeRw?: number;
}

/** GET /images/{name}/json, the fields the agent reads. */
export interface ImageDetails {
  Id: string;
  RepoTags?: string[];
  RepoDigests?: string[];
  Size?: number;
  Created?: string;
  Config?: { Labels?: Record<string, string> | null };
  RootFS?: { Layers?: string[] };
}

/** What an engine status code means to the agent; anything else it answered is `refused`. */
export type EngineFailureKind = 'not_modified' | 'not_found' | 'conflict' | 'refused';

/**
 * The engine answered with an error status. No code of its own: the caller knows what the
 * operation meant and wraps it in an AgentError with its code (a 409 on create is
 * `name_conflict`, the same on rename a failed recreate); one that does not reports it under
 * its own fallback code, as before the port. The message is the client's ("(HTTP code 409) ..."),
 * `said` the engine's own sentence. An error that never reached the engine (docker_unavailable,
 * engine_deadline) passes through the port as it is.
 */
export class EngineError extends Error {
  constructor(
    readonly kind: EngineFailureKind,
    readonly statusCode: number,
    message: string,
    readonly said: string = message,
    options: { cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EngineError';
  }
}

export function isEngineFailure(err: unknown, kind: EngineFailureKind): boolean {
  return err instanceof EngineError && err.kind === kind;
}

/** The engine's own sentence ("(HTTP code 409) conflict - ..." keeps only what follows). */
export function engineMessage(err: unknown): string {
  if (err instanceof EngineError) return err.said.trim();
  const json = (err as { json?: { message?: unknown } } | null)?.json;
  if (json && typeof json.message === 'string') return json.message.trim();
  return ((err as Error | null)?.message ?? String(err)).trim();
}

/**
 * For a `.catch` of an engine call: the engine's refusal of `what` becomes an AgentError of the
 * caller's code with the engine's sentence; anything else (docker_unavailable, a lost socket)
 * goes on as it is, for the caller's own handling.
 */
export function refusedAs(code: string, what: string): (err: unknown) => never {
  return (err) => {
    if (!(err instanceof EngineError)) throw err;
    throw new AgentError(code, `the Docker engine refused ${what}: ${engineMessage(err)}`, { cause: err });
  };
}
