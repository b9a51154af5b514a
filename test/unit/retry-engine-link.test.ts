import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { silentLogger } from '../../agent/core/logger.js';
import { DockerEngineLink } from '../../agent/docker/engine-link.js';
import { EventBus, type AgentEvent } from '../../agent/state/event-bus.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { AgentState } from '../../agent/state/types.js';
import { tempDir } from '../helpers/temp.js';
import { sleep, waitUntil } from '../helpers/wait.js';

/**
 * A stand-in Docker engine on a unix socket: answers what the link asks (version, info, ping,
 * events) the way the test needs, and counts each request with its time. Unit tests of the
 * link's retry paths need no real dockerd: what they prove is when the link asks again.
 */
class FakeEngine {
  readonly requests: Array<{ path: string; at: number }> = [];
  /** /version answers 500 while true: the link's connect fails. */
  failVersion = false;
  /** /_ping answers 500 while true: the engine looks gone. */
  failPing = false;
  /** How /events answers: 'hold' keeps the stream open and quiet, 'end' ends it at once. */
  events: 'hold' | 'end' = 'hold';
  readonly socketPath = join(tempDir('rfa-fake-engine-'), 'docker.sock');
  private readonly server: Server = createServer((req, res) => this.answer(req, res));
  private readonly held = new Set<ServerResponse>();

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socketPath, resolve));
  }

  async close(): Promise<void> {
    for (const res of this.held) res.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Ends every event stream held open, as an engine that goes away does. */
  endStreams(): void {
    for (const res of this.held) res.end();
    this.held.clear();
  }

  count(path: string, since = 0): number {
    return this.requests.filter((r) => r.path === path && r.at >= since).length;
  }

  times(path: string): number[] {
    return this.requests.filter((r) => r.path === path).map((r) => r.at);
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    // dockerode may prefix a version (/v1.41/...); the query does not matter here.
    const path = (req.url ?? '').replace(/^\/v[\d.]+/, '').replace(/\?.*$/, '');
    this.requests.push({ path, at: Date.now() });
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    switch (path) {
      case '/version':
        if (this.failVersion) return json(500, { message: 'engine starting' });
        return json(200, { Version: '20.10.99', ApiVersion: '1.41', Os: 'linux', Arch: 'amd64' });
      case '/info':
        return json(200, { DockerRootDir: '/var/lib/docker' });
      case '/_ping':
        if (this.failPing) return json(500, { message: 'engine gone' });
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        return void res.end('OK');
      case '/events':
        res.writeHead(200, { 'Content-Type': 'application/json' });
        if (this.events === 'end') return void res.end();
        this.held.add(res);
        res.flushHeaders();
        return;
      default:
        return json(404, { message: `no ${path} here` });
    }
  }
}

function state(): AgentState {
  const now = new Date().toISOString();
  const docker = { available: false, since: now, error: { code: 'docker_connecting', message: 'connecting' } };
  return { docker } as unknown as AgentState;
}

describe('retry: the Docker engine link backs off', () => {
  let engine: FakeEngine | undefined;
  let link: DockerEngineLink | undefined;
  afterEach(async () => {
    await link?.stop();
    await engine?.close();
    link = undefined;
    engine = undefined;
  });

  function build(retry: { initialMs: number; maxMs: number }) {
    const events: AgentEvent[] = [];
    const bus = new EventBus();
    bus.subscribe((e) => events.push(e));
    const store = new StateStore(state());
    const socketPath = engine!.socketPath;
    link = new DockerEngineLink({ socketPath, store, bus, logger: silentLogger, retry, pingIntervalMs: 60_000 });
    return { link, store, events };
  }

  it('reconnects to a refusing engine with growing delays up to the cap, and starts over after a success', async () => {
    engine = new FakeEngine();
    await engine.listen();
    engine.failVersion = true;
    const { link: l, store } = build({ initialMs: 100, maxMs: 1000 });
    await l.start();
    const t0 = Date.now();
    await sleep(2_000);
    // Delays 50-100, 100-200, 200-400, 400-800, then 500-1000 each: 4 to 7 attempts in 2 s
    // (without a backoff, thousands).
    const attempts = engine.times('/version').filter((t) => t - t0 <= 2_000);
    assert.ok(attempts.length >= 3 && attempts.length <= 7, `${attempts.length} connects in 2 s`);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    const floors = [50, 100, 200, 400, 500, 500];
    // Timers fire late under load, never early (a few ms of clock granularity aside).
    gaps.forEach((gap, i) => assert.ok(gap >= floors[i]! - 5, `gap ${i + 1} was ${gap} ms, below ${floors[i]} ms`));
    assert.ok(
      gaps.every((g) => g <= 1000 + 250),
      `capped at 1 s: ${gaps.join(', ')}`,
    );
    assert.equal(store.get().docker.available, false);

    // Back: connected, and the next loss begins the ladder again at its first step (50-100 ms),
    // not where it was (500-1000 ms).
    engine.failVersion = false;
    await waitUntil(() => store.get().docker.available, 3_000, 'the link connected');
    engine.failVersion = true;
    engine.failPing = true;
    const lostAt = Date.now();
    engine.endStreams();
    await waitUntil(() => engine!.count('/version', lostAt) >= 1, 3_000, 'a reconnect attempt');
    const first = engine.times('/version').filter((t) => t >= lostAt)[0]! - lostAt;
    assert.ok(first < 400, `the first reconnect after a success came after ${first} ms`);
  });

  it('a stream that ends at once while pings are answered is re-opened with backoff, not in a loop', async () => {
    engine = new FakeEngine();
    await engine.listen();
    const { link: l, store, events } = build({ initialMs: 100, maxMs: 400 });
    await l.start();
    await waitUntil(() => store.get().docker.available, 2_000, 'the link connected');
    engine.events = 'end';
    // Ends the stream the link holds: from now on every re-opened stream ends as soon as it opens.
    const since = Date.now();
    engine.endStreams();
    await sleep(2_000);
    const reopens = engine.count('/events', since);
    // The engine answers: not lost, and the stream asked again at most at the backoff's pace.
    assert.ok(reopens >= 2 && reopens <= 13, `${reopens} event streams opened in 2 s`);
    assert.equal(store.get().docker.available, true);
    assert.equal(events.filter((e) => e.type === 'docker.lost').length, 0);
    // Quiet again: a stream that stays open ends the retries; nothing more is asked.
    engine.events = 'hold';
    await waitUntil(() => engine!.count('/events', since) > reopens, 2_000, 'the stream held');
    const held = engine.count('/events', since);
    await sleep(600);
    assert.equal(engine.count('/events', since), held, 'no re-open while the stream is open');
  });
});
