import { EventEmitter } from 'node:events';
// First: keeps dockerode's unused heavy parts unloaded (see the file).
import './defer-engine-extras.js';
import Docker from 'dockerode';
import { Backoff } from '../core/backoff.js';
import { AgentError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';
import { EngineError, engineMessage } from './engine.js';
import { DEFAULT_ENGINE_DEADLINES, DeadlineModem, type EngineDeadlines } from './engine-deadline.js';

/** One message of the engine's event stream (GET /events), as the Engine API sends it. */
export interface EngineEvent {
  Type: string;
  Action: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
  [key: string]: unknown;
}

export interface EngineLinkOptions {
  socketPath: string;
  store: StateStore;
  bus: EventBus;
  logger: Logger;
  /** How often a connected engine is pinged: a hung daemon keeps its socket open. */
  pingIntervalMs?: number;
  retry?: { initialMs: number; maxMs: number };
  /** Seconds per kind of engine operation (docker.deadlines); no blanket timeout. */
  deadlines?: EngineDeadlines;
  /** Seconds a stop without its own `t` may wait: the longest configured stopTimeout. */
  stopSeconds?: () => number;
}

/**
 * The agent's view of the Docker engine: reachable or not (and why), its version, and its event
 * stream for whoever follows containers. An engine that is absent, stops or restarts is state,
 * not failure: the link keeps retrying with backoff and recovers without restarting the agent.
 */
export class DockerEngineLink {
  readonly name = 'docker';
  readonly docker: Docker;
  private readonly modem: DeadlineModem;
  private readonly emitter = new EventEmitter();
  private readonly backoff: Backoff;
  /** Re-opens of an event stream that ended while the engine answers (see streamLost). */
  private readonly reopenBackoff: Backoff;
  private stream: NodeJS.ReadableStream | undefined;
  /** When the current event stream was opened: one that ends at once is re-opened with backoff. */
  private streamOpenedAt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private reopenTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private running = false;
  private connected = false;
  /** The first failed connect is logged at warn; the retries after it are not (see markUnavailable). */
  private saidUnavailable = false;
  /** timeNano of the last engine event seen: a re-opened stream resumes right after it. */
  private lastEventNano: bigint | undefined;

  constructor(private readonly options: EngineLinkOptions) {
    // Each operation gets its own deadline (engine-deadline.ts); a quiet event stream is healthy.
    const deadlines = options.deadlines ?? DEFAULT_ENGINE_DEADLINES;
    this.modem = new DeadlineModem({ socketPath: options.socketPath }, deadlines, options.stopSeconds);
    this.docker = new Docker({ modem: this.modem } as Docker.DockerOptions);
    this.backoff = new Backoff(options.retry ?? { initialMs: 1000, maxMs: 30_000 });
    this.reopenBackoff = new Backoff(options.retry ?? { initialMs: 1000, maxMs: 30_000 });
  }

  get available(): boolean {
    return this.connected;
  }

  /** The engine's client for an operation that needs it now, or docker_unavailable saying why. */
  required(): Docker {
    const state = this.options.store.get().docker;
    if (!state.available)
      throw new AgentError(
        'docker_unavailable',
        `the Docker engine is not available: ${state.error?.message ?? 'unknown reason'}`,
      );
    return this.docker;
  }

  onEngineEvent(listener: (event: EngineEvent) => void): () => void {
    this.emitter.on('engine-event', listener);
    return () => this.emitter.off('engine-event', listener);
  }

  /** Called after every (re)connection, so followers can resynchronise what they missed. */
  onConnected(listener: () => void): () => void {
    this.emitter.on('connected', listener);
    return () => this.emitter.off('connected', listener);
  }

  async start(): Promise<void> {
    this.running = true;
    void this.connect();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.retryTimer);
    clearTimeout(this.reopenTimer);
    clearInterval(this.pingTimer);
    this.closeStream();
  }

  private async connect(): Promise<void> {
    if (!this.running) return;
    try {
      const version = await this.docker.version();
      const info = (await this.docker.info()) as { DockerRootDir?: string };
      this.lastEventNano = undefined;
      const stream = await this.docker.getEvents({ since: Math.floor(Date.now() / 1000) });
      if (!this.running) {
        (stream as unknown as { destroy?: () => void }).destroy?.();
        return;
      }
      this.followEvents(stream);
      this.connected = true;
      this.saidUnavailable = false;
      this.backoff.reset();
      this.reopenBackoff.reset();
      this.options.store.update('docker', () => ({
        available: true,
        version: version.Version,
        apiVersion: version.ApiVersion,
        os: version.Os,
        arch: version.Arch,
        ...(info.DockerRootDir ? { rootDir: info.DockerRootDir } : {}),
        since: new Date().toISOString(),
      }));
      this.options.logger.info('docker engine connected', { version: version.Version, apiVersion: version.ApiVersion });
      this.options.bus.emit('docker.connected', { version: version.Version, apiVersion: version.ApiVersion });
      this.startPinging();
      this.emitter.emit('connected');
    } catch (err) {
      this.markUnavailable(err);
    }
  }

  private followEvents(stream: NodeJS.ReadableStream): void {
    this.stream = stream;
    this.streamOpenedAt = Date.now();
    let buffered = '';
    stream.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      // The stream is newline-delimited JSON, but a chunk may end mid-object.
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) this.dispatch(line);
      }
      if (buffered.length > 1_000_000) buffered = '';
    });
    const lost = (reason: string) => () => {
      if (this.stream !== stream) return;
      void this.streamLost(Object.assign(new Error(`docker event stream ${reason}`), { code: 'docker_lost' }));
    };
    stream.on('end', lost('ended'));
    stream.on('close', lost('closed'));
    stream.on('error', (err: Error) => {
      if (this.stream === stream) void this.streamLost(err);
    });
  }

  /**
   * The event stream ended. Only a failed ping means the engine is gone; an engine that answers
   * gets its stream re-opened from the last event seen, so followers miss nothing. A stream that
   * lived a while is re-opened at once; one that ends as soon as it opens (a proxy in front of the
   * socket that closes /events) is re-opened with backoff, or the link would spin on it.
   */
  private async streamLost(err: Error): Promise<void> {
    this.stream = undefined;
    if (!this.running || !this.connected) return;
    const stable = Date.now() - this.streamOpenedAt >= Math.min(this.options.retry?.maxMs ?? 30_000, STREAM_STABLE_MS);
    if (stable) this.reopenBackoff.reset();
    try {
      await this.docker.ping();
    } catch (pingErr) {
      this.markUnavailable(pingErr instanceof AgentError && pingErr.code === 'engine_deadline' ? pingErr : err);
      return;
    }
    const delay = stable ? 0 : this.reopenBackoff.next();
    clearTimeout(this.reopenTimer);
    this.reopenTimer = setTimeout(() => void this.reopenStream(err), delay);
  }

  private async reopenStream(err: Error): Promise<void> {
    this.reopenTimer = undefined;
    // Lost meanwhile (then connect() opens a stream of its own), stopped, or opened already.
    if (!this.running || !this.connected || this.stream) return;
    try {
      const last = this.lastEventNano;
      const since = last === undefined ? Math.floor(Date.now() / 1000) : formatNano(last + 1n);
      const stream = await this.docker.getEvents({ since } as { since: number });
      if (!this.running || !this.connected || this.stream) {
        (stream as unknown as { destroy?: () => void }).destroy?.();
        return;
      }
      const error = toErrorInfo(err);
      this.options.logger.warn('docker event stream ended while the engine answers; resumed', { error });
      this.followEvents(stream);
    } catch (openErr) {
      this.markUnavailable(openErr instanceof AgentError && openErr.code === 'engine_deadline' ? openErr : err);
    }
  }

  /**
   * An engine call failed: say why in words that fit. The engine that still answers a ping is
   * not "unavailable": its error is about the operation (engine_deadline, engine_error, or the
   * HTTP error it answered). Only when the ping fails too is it docker_unresponsive.
   */
  async explain(err: unknown, doing: string): Promise<AgentError> {
    // An EngineError: the engine answered with an error status (dockerode-engine.ts read it).
    if (err instanceof EngineError) {
      const message = `the Docker engine refused to ${doing}: ${engineMessage(err)}`;
      return new AgentError('engine_error', message, { cause: err });
    }
    try {
      await this.docker.ping();
    } catch (pingErr) {
      const why = describeDockerError(pingErr, this.options.socketPath);
      const message = `could not ${doing}: the Docker engine does not answer pings (${why.message})`;
      return new AgentError('docker_unresponsive', message, { cause: err });
    }
    if (err instanceof AgentError) return err;
    const message = `the Docker engine failed to ${doing} (it answers pings): ${engineMessage(err)}`;
    return new AgentError('engine_error', message, { cause: err });
  }

  private dispatch(line: string): void {
    let event: EngineEvent;
    try {
      event = JSON.parse(line) as EngineEvent;
      // From the text: timeNano is beyond a double's precision.
      const nano = /"timeNano":(\d+)/.exec(line)?.[1];
      if (nano) this.lastEventNano = BigInt(nano);
    } catch {
      this.options.logger.debug('unparseable docker event', { line: line.slice(0, 200) });
      return;
    }
    for (const listener of this.emitter.listeners('engine-event') as Array<(e: EngineEvent) => void>) {
      try {
        listener(event);
      } catch (err) {
        this.options.logger.error('docker event listener failed', { error: err as Error });
      }
    }
  }

  private startPinging(): void {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      this.docker.ping().catch((err: unknown) => this.markUnavailable(err));
    }, this.options.pingIntervalMs ?? 30_000);
  }

  private markUnavailable(err: unknown): void {
    const wasConnected = this.connected;
    this.connected = false;
    clearInterval(this.pingTimer);
    clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
    this.closeStream();
    const error = describeDockerError(err, this.options.socketPath);
    // Nothing sent to an engine found gone may wait for ever for its answer (a hung dockerd).
    this.modem.abortWaiting(`the Docker engine is not available (${error.message})`);
    this.options.store.update('docker', (current) => ({
      available: false,
      error,
      since: current.available || current.error?.code !== error.code ? new Date().toISOString() : current.since,
    }));
    if (wasConnected) {
      this.options.logger.warn('docker engine lost', { error });
      this.options.bus.emit('docker.lost', { error });
    } else if (!this.saidUnavailable) {
      // Once, not at every retry: the console of an agent without Docker was silent about it.
      const where = this.options.socketPath;
      this.options.logger.warn(`docker engine not available at ${where}: ${error.message}; retrying with backoff`, {
        error,
      });
    }
    this.saidUnavailable = true;
    if (!this.running || this.retryTimer) return;
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, delay);
  }

  private closeStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    (stream as unknown as { destroy?: () => void } | undefined)?.destroy?.();
  }
}

/**
 * An event stream open this long ended for a reason of its own (the engine restarted its API,
 * a proxy's idle limit): re-opened at once, and the backoff of re-opens starts over.
 */
const STREAM_STABLE_MS = 10_000;

/** A Docker timestamp "seconds.nanoseconds" for GET /events?since= (numbers lose nanoseconds). */
function formatNano(nano: bigint): string {
  return `${nano / 1_000_000_000n}.${(nano % 1_000_000_000n).toString().padStart(9, '0')}`;
}

/** Operators see "docker_unreachable: no Docker engine at /var/run/docker.sock", not ENOENT. */
export function describeDockerError(err: unknown, socketPath: string): { code: string; message: string } {
  const info = toErrorInfo(err, 'docker_error');
  switch (info.code) {
    case 'enoent':
      return {
        code: 'docker_unreachable',
        message: `no Docker engine at ${socketPath} (socket missing): is docker.service running?`,
      };
    case 'econnrefused':
      return {
        code: 'docker_unreachable',
        message: `Docker engine at ${socketPath} refuses connections: is docker.service running?`,
      };
    case 'engine_deadline':
      return {
        code: 'docker_unresponsive',
        message: `the Docker engine at ${socketPath} does not answer pings in time: is dockerd hung? (${info.message})`,
      };
    case 'eacces':
      return {
        code: 'docker_forbidden',
        message: `no permission to use ${socketPath}: run the agent as root or in the docker group`,
      };
    default:
      return info;
  }
}
