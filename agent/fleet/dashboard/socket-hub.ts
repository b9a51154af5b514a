import type { WebSocket } from 'ws';
import { AgentError } from '../../core/errors.js';
import type { AgentEvent } from '../../state/event-bus.js';
import type { ActionRunner } from './actions.js';
import type { FleetModel } from './fleet-model.js';
import { LIMITS, type ClientMessage, type ServerMessage } from './protocol.js';
import type { RequestSender } from './send-request.js';
import type { Role } from './tokens.js';

export interface SocketHubOptions {
  base: string;
  staleAfterMs: number;
  timeoutMs: number;
  /** Pages connected at once; one more is refused (close 1013, try again later). */
  maxSockets?: number;
  /** Bytes a page may leave unread; past it the page is dropped rather than buffered for without end. */
  maxBufferedBytes?: number;
  /** Changes are gathered this long and sent as one frame: a fleet's heartbeats are not a frame each. */
  flushMs?: number;
  /** A page that does not answer a ping within this long is dropped. */
  pingMs?: number;
}

interface Page {
  ws: WebSocket;
  role: Role;
  /** Robots changed since the last frame (the names only: the frame takes the views as they are then). */
  dirty: Set<string>;
  replaying: boolean;
  watching: string | null;
  logsInFlight: boolean;
  alive: boolean;
  /** Watches of one page run one after the other: two at once would count a robot twice. */
  watchChain: Promise<void>;
}

/** Close codes the page understands (4000-4999 are the application's). */
export const CLOSE = { tooSlow: 4008, tooMany: 1013, shutdown: 1001 } as const;

/**
 * Every connected page: the replay when it connects, then the changes, its robot page's sections
 * and events, what its actions do; and what it asks for, checked against its role.
 */
export class SocketHub {
  private readonly pages = new Set<Page>();
  private readonly timer: NodeJS.Timeout;
  private readonly pinger: NodeJS.Timeout;

  constructor(
    private readonly model: FleetModel,
    private readonly actions: ActionRunner,
    private readonly sender: RequestSender,
    private readonly o: SocketHubOptions,
  ) {
    model.on('robot', (r: { robot: string }) => this.touch(r.robot));
    model.on('gone', (robot: string) => this.touch(robot));
    model.on('section', (robot: string, name: string, value: unknown) => {
      for (const p of this.pages)
        if (p.watching === robot) this.send(p, { t: 'sections', robot, sections: { [name]: value } });
    });
    model.on('event', (robot: string, event: AgentEvent) => {
      actions.onEvent(robot, event);
      for (const p of this.pages) if (p.watching === robot) this.send(p, { t: 'events', robot, events: [event] });
    });
    this.timer = setInterval(() => this.flush(), o.flushMs ?? 100);
    this.pinger = setInterval(() => this.ping(), o.pingMs ?? 30_000);
    this.timer.unref();
    this.pinger.unref();
  }

  get size(): number {
    return this.pages.size;
  }

  /** What every page hears: the outcome and progress of every action, whoever started it. */
  broadcast(m: ServerMessage): void {
    for (const p of this.pages) this.send(p, m);
  }

  attach(ws: WebSocket, role: Role): void {
    const max = this.o.maxSockets ?? 64;
    // An eighth of the pages is kept for operators: read-only pages (a wall screen, a leaked
    // read-only token) cannot use every slot and lock the operators out of acting.
    const limit = role === 'operator' ? max : max - Math.floor(max / 8);
    if (this.pages.size >= limit) {
      ws.close(CLOSE.tooMany, 'too many dashboard pages are open; close one');
      return;
    }
    const page: Page = {
      ws,
      role,
      dirty: new Set(),
      replaying: true,
      watching: null,
      logsInFlight: false,
      alive: true,
      watchChain: Promise.resolve(),
    };
    this.pages.add(page);
    ws.on('pong', () => (page.alive = true));
    ws.on('message', (data, isBinary) => this.receive(page, data as Buffer, isBinary));
    ws.on('close', () => this.detach(page));
    ws.on('error', () => ws.terminate());
    void this.replay(page);
  }

  close(): void {
    clearInterval(this.timer);
    clearInterval(this.pinger);
    for (const p of this.pages) p.ws.close(CLOSE.shutdown, 'the dashboard server is stopping');
  }

  private detach(page: Page): void {
    if (!this.pages.delete(page)) return;
    // After any watch still running for it, so the count it took is given back.
    page.watchChain = page.watchChain
      .then(async () => {
        if (page.watching) await this.model.unwatch(page.watching);
        page.watching = null;
      })
      .catch(() => undefined);
  }

  /**
   * Everything held, in chunks each sent once the one before left (a replay of 10,000 robots is
   * ~10 MB: it must not sit in memory twice); changes meanwhile are sent after it.
   */
  private async replay(page: Page): Promise<void> {
    this.send(page, {
      t: 'hello',
      role: page.role,
      base: this.o.base,
      staleAfterMs: this.o.staleAfterMs,
      maxSelection: LIMITS.maxSelection,
    });
    const names = [...this.model.robots.keys()];
    for (let at = 0; at < names.length; at += LIMITS.replayChunk) {
      const robots = names.slice(at, at + LIMITS.replayChunk).flatMap((n) => this.model.robots.get(n) ?? []);
      const sent = await new Promise<boolean>((resolve) => {
        if (page.ws.readyState !== page.ws.OPEN) return resolve(false);
        page.ws.send(JSON.stringify({ t: 'robots', robots, replay: true } satisfies ServerMessage), (err) =>
          resolve(!err),
        );
      });
      if (!sent) return;
    }
    const overflow = this.model.overflow;
    const warning =
      overflow > 0
        ? `the dashboard holds at most ${this.model.robots.size} robots; ${overflow} summaries were left out`
        : null;
    page.replaying = false;
    this.send(page, { t: 'replayed', robots: this.model.robots.size, warning });
  }

  private touch(robot: string): void {
    for (const p of this.pages) p.dirty.add(robot);
  }

  private flush(): void {
    for (const p of this.pages) {
      if (p.replaying || p.dirty.size === 0) continue;
      const robots = [];
      const gone = [];
      for (const name of p.dirty) {
        const r = this.model.robots.get(name);
        if (r) robots.push(r);
        else gone.push(name);
      }
      p.dirty.clear();
      this.send(p, { t: 'robots', robots, ...(gone.length ? { gone } : {}) });
    }
  }

  private ping(): void {
    for (const p of this.pages) {
      if (!p.alive) {
        p.ws.terminate();
        continue;
      }
      p.alive = false;
      p.ws.ping();
    }
  }

  /** A page that cannot keep up is dropped: it reconnects and gets a fresh replay. */
  private send(page: Page, m: ServerMessage): void {
    if (page.ws.readyState !== page.ws.OPEN) return;
    if (page.ws.bufferedAmount > (this.o.maxBufferedBytes ?? 16 * 1024 * 1024)) {
      page.ws.close(CLOSE.tooSlow, 'the page did not keep up with the fleet; reload');
      // A close frame queued behind megabytes would wait for them: cut the connection.
      page.ws.terminate();
      this.detach(page);
      return;
    }
    page.ws.send(JSON.stringify(m));
  }

  private receive(page: Page, data: Buffer, isBinary: boolean): void {
    let m: ClientMessage;
    try {
      if (isBinary) throw new Error('binary');
      m = JSON.parse(data.toString('utf8')) as ClientMessage;
      if (typeof m !== 'object' || m === null) throw new Error('not an object');
    } catch {
      this.send(page, { t: 'error', code: 'bad_message', message: 'the dashboard takes JSON objects only' });
      return;
    }
    try {
      if (m.t === 'watch') {
        // A broker that went away refuses the subscription: the page hears why, nothing escapes.
        page.watchChain = page.watchChain
          .then(() => this.watch(page, m.robot))
          .catch((err: unknown) => {
            this.send(page, {
              t: 'error',
              code: 'broker_unavailable',
              message:
                `cannot open ${String(m.robot)}'s page now: ` +
                `the fleet broker refused the subscription (${(err as Error).message}); the dashboard reconnects by itself`,
            });
          });
      } else if (m.t === 'logs') this.logs(page, m);
      else if (m.t === 'act') {
        if (page.role !== 'operator') {
          throw new AgentError(
            'forbidden',
            'this page was opened with the read-only token: actions need the operator token',
          );
        }
        this.actions.start(m);
      } else throw new AgentError('bad_message', `unknown message ${String((m as { t: unknown }).t)}`);
    } catch (err) {
      const e = err instanceof AgentError ? err : new AgentError('internal', (err as Error).message);
      this.send(page, {
        t: 'error',
        code: e.code,
        message: e.message,
        ...(m.t === 'act' && typeof m.id === 'string' ? { ref: m.id } : {}),
      });
    }
  }

  private async watch(page: Page, robot: string | null): Promise<void> {
    if (page.watching === robot) return;
    if (page.watching) await this.model.unwatch(page.watching);
    page.watching = null;
    if (typeof robot !== 'string') return;
    const w = await this.model.watch(robot);
    if (!w) {
      this.send(page, { t: 'error', code: 'busy', message: 'too many robot pages are open on this dashboard' });
      return;
    }
    if (!this.pages.has(page)) {
      await this.model.unwatch(robot);
      return;
    }
    page.watching = robot;
    this.send(page, { t: 'sections', robot, sections: w.sections });
    if (w.events.length) this.send(page, { t: 'events', robot, events: w.events });
  }

  /** The last lines of a container's log, asked of the robot; one at a time per page. */
  private logs(page: Page, m: Extract<ClientMessage, { t: 'logs' }>): void {
    if (
      typeof m.robot !== 'string' ||
      typeof m.name !== 'string' ||
      m.name.length > 128 ||
      !/^[^/+#\s]{1,128}$/.test(m.robot)
    ) {
      throw new AgentError('bad_message', 'logs needs a robot and a container name');
    }
    if (page.logsInFlight) throw new AgentError('busy', 'logs already asked for; wait for them');
    page.logsInFlight = true;
    const tail = Number.isInteger(m.tail) && m.tail! > 0 ? Math.min(m.tail!, 500) : 100;
    void this.sender
      .send(m.robot, 'logs', { name: m.name, tail }, this.o.timeoutMs)
      .then((r) => {
        const result = r.result as { lines?: string[] } | undefined;
        this.send(page, {
          t: 'logs',
          robot: m.robot,
          name: m.name,
          ok: r.ok,
          ...(r.ok
            ? { lines: result?.lines ?? [] }
            : { error: r.error ?? { code: 'internal', message: 'no error given' } }),
        });
      })
      .finally(() => {
        page.logsInFlight = false;
      });
  }
}
