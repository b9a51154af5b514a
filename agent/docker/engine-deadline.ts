// First: keeps dockerode's unused heavy parts unloaded (see the file).
import './defer-engine-extras.js';
import Modem from 'docker-modem';
import { AgentError } from '../core/errors.js';

/** Seconds each kind of engine operation may take before the agent gives up on it. */
export interface EngineDeadlines {
  /** ping, version, info: liveness probes, the only short ones. */
  probe: number;
  /** inspect, list, history, logs (not followed). */
  read: number;
  /** create, start, rename, tag, remove, kill, exec create and any other short change. */
  change: number;
  /** Added to a stop's or restart's own wait (its `t`, else the longest configured stopTimeout). */
  stopMargin: number;
}

export const DEFAULT_ENGINE_DEADLINES: EngineDeadlines = { probe: 10, read: 60, change: 120, stopMargin: 30 };

/** What one engine request is, for its deadline and for the sentence an operator reads. */
export interface EngineOperation {
  /** e.g. "stop container 3f2a1b0c9d8e", "inspect image ros:1". */
  what: string;
  /** Milliseconds, or undefined for no fixed deadline (streams, commit, wait). */
  deadlineMs: number | undefined;
}

const ID = '([^/?]+)';
const route = (method: string, path: string) => new RegExp(`^${method} ${path.replace(/\{\}/g, ID)}$`);

/**
 * Operations with no fixed deadline: they last as long as their work (a 20 GB pull, a commit of
 * 3 GB of changes, a container that runs for hours) and are watched otherwise: pull and push by
 * their progress (images.stallTimeout), the event stream by pings, a wait by the container.
 */
const UNBOUNDED: Array<[RegExp, string]> = [
  [route('GET', '/events'), 'follow the event stream'],
  [route('POST', '/commit'), 'commit a container'],
  [route('POST', '/containers/{}/wait'), 'wait for container $1'],
  [route('POST', '/containers/{}/attach'), 'attach to container $1'],
  [route('GET', '/containers/{}/export'), 'export container $1'],
  [route('(?:GET|PUT|HEAD)', '/containers/{}/archive'), 'copy files of container $1'],
  [route('POST', '/exec/{}/start'), 'run a command in a container'],
  [route('POST', '/images/create'), 'pull or import an image'],
  [route('POST', '/images/{}/push'), 'push image $1'],
  [route('POST', '/build'), 'build an image'],
  [route('POST', '/images/load'), 'load an image archive'],
  [route('GET', '/images/{}/get'), 'save image $1'],
  [route('GET', '/images/get'), 'save images'],
];

const PROBES: Array<[RegExp, string]> = [
  [route('(?:GET|HEAD)', '/_ping'), 'answer a ping'],
  [route('GET', '/version'), 'tell its version'],
  [route('GET', '/info'), 'describe itself'],
];

const STOPS = route('POST', '/containers/{}/(stop|restart)');
const LOGS = route('GET', '/containers/{}/logs');

/**
 * The deadline that fits one Engine API request. `stopSeconds` is what a stop or restart without
 * its own `t` waits: the engine then uses the container's StopTimeout, set from its config.
 */
export function engineOperation(
  request: { method: string; path: string; options?: Record<string, unknown> },
  deadlines: EngineDeadlines,
  stopSeconds: number,
): EngineOperation {
  const key = `${request.method.toUpperCase()} ${request.path.split('?')[0]}`;
  const describe = (template: string, match: RegExpExecArray) =>
    template.replace(/\$(\d)/g, (_, n: string) => decoded(match[Number(n)] ?? '').slice(0, 64));
  for (const [pattern, what] of UNBOUNDED) {
    const m = pattern.exec(key);
    if (m) return { what: describe(what, m), deadlineMs: undefined };
  }
  for (const [pattern, what] of PROBES) {
    const m = pattern.exec(key);
    if (m) return { what: describe(what, m), deadlineMs: deadlines.probe * 1000 };
  }
  const stop = STOPS.exec(key);
  if (stop) {
    const t = Number(request.options?.t);
    const wait = Number.isFinite(t) && t >= 0 ? t : stopSeconds;
    return { what: `${stop[2]} container ${describe('$1', stop)}`, deadlineMs: (wait + deadlines.stopMargin) * 1000 };
  }
  const logs = LOGS.exec(key);
  if (logs) {
    // Followed logs last as long as the container prints; a tail is a read.
    const name = describe('$1', logs);
    if (request.options?.follow === true) return { what: `follow the logs of ${name}`, deadlineMs: undefined };
    return { what: `read the logs of container ${name}`, deadlineMs: deadlines.read * 1000 };
  }
  const method = request.method.toUpperCase();
  const what = `${method} ${request.path.split('?')[0]}`.slice(0, 120);
  return { what, deadlineMs: (method === 'GET' || method === 'HEAD' ? deadlines.read : deadlines.change) * 1000 };
}

/** A path segment as the operator named it; a malformed escape is shown as sent. */
function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

type DialOptions = {
  method: string;
  path: string;
  options?: Record<string, unknown>;
  abortSignal?: AbortSignal;
  isStream?: boolean;
};
type DialCallback = (err: unknown, result?: unknown) => void;

/** One request sent and not yet answered; `lost` is set when the engine is found gone. */
interface Waiting {
  controller: AbortController;
  what: string;
  lost?: AgentError;
}

/**
 * docker-modem with a deadline per operation instead of one blanket socket timeout: the blanket
 * 15 s cut the quiet event stream, a 25 s stop, a long commit and a stalled pull alike. A request
 * past its deadline is aborted (docker-modem's abortSignal) and fails with `engine_deadline`.
 * Requests with no deadline still waiting for the engine's answer are aborted when the engine is
 * found gone (abortWaiting): a hung dockerd must not hold a commit for ever.
 */
export class DeadlineModem extends Modem {
  /** Requests sent and not yet answered, with what to say if the engine is found gone. */
  private readonly waiting = new Set<Waiting>();

  constructor(
    options: Modem.ConstructorOptions,
    private readonly deadlines: EngineDeadlines = DEFAULT_ENGINE_DEADLINES,
    /** The longest stop a container may take when a stop names no `t`, seconds. */
    private readonly stopSeconds: () => number = () => 10,
  ) {
    super({ ...options, timeout: undefined });
  }

  /** The engine stopped answering pings: fail every request still waiting for an answer. */
  abortWaiting(why: string): void {
    for (const entry of this.waiting) {
      entry.lost = new AgentError('docker_unresponsive', `could not ${entry.what}: ${why}`);
      entry.controller.abort(entry.lost);
    }
    this.waiting.clear();
  }

  override dial(options: DialOptions, callback: DialCallback): void {
    const operation = engineOperation(options, this.deadlines, this.stopSeconds());
    const deadlineMs = operation.deadlineMs;
    const controller = new AbortController();
    const entry: Waiting = { controller, what: operation.what };
    this.waiting.add(entry);
    const expire = () => controller.abort(new DeadlineExceeded());
    const timer = deadlineMs === undefined ? undefined : setTimeout(expire, deadlineMs);
    timer?.unref();
    const caller = options.abortSignal ?? (options.options?.abortSignal as AbortSignal | undefined);
    const signal = caller ? AbortSignal.any([caller, controller.signal]) : controller.signal;
    const seconds = Math.round((deadlineMs ?? 0) / 1000);
    const explain = (err: unknown): unknown => {
      if (entry.lost) return entry.lost;
      if (!controller.signal.aborted) return err;
      return new AgentError(
        'engine_deadline',
        `the Docker engine did not ${operation.what} within ${seconds} s; ` +
          'it may be overloaded or stuck (see journalctl -u docker)',
        { cause: err, details: { deadlineSeconds: seconds } },
      );
    };
    super.dial(
      { ...options, abortSignal: signal } as never,
      ((err: unknown, result?: unknown) => {
        this.waiting.delete(entry);
        if (err || !options.isStream || !isStream(result) || timer === undefined) {
          clearTimeout(timer);
          callback(err ? explain(err) : null, result);
          return;
        }
        // A bounded stream (a logs tail) keeps its deadline until it is read to the end.
        result.once('close', () => clearTimeout(timer));
        const cut = () => result.destroy(explain(new Error('aborted')) as Error);
        controller.signal.addEventListener('abort', cut, { once: true });
        callback(null, result);
      }) as never,
    );
  }
}

class DeadlineExceeded extends Error {
  constructor() {
    super('engine deadline exceeded');
    this.name = 'AbortError';
  }
}

type EngineStream = NodeJS.ReadableStream & { destroy(err?: Error): void; once(e: string, l: () => void): void };

function isStream(value: unknown): value is EngineStream {
  return typeof (value as { pipe?: unknown } | null)?.pipe === 'function';
}
