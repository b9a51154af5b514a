import WebSocket from 'ws';
import type { ClientMessage, ServerMessage } from '../../agent/fleet/dashboard/protocol.js';
import { waitUntil } from './wait.js';

/** A plain WebSocket client of `robot-fleet serve`, as a page is: every message kept, in order. */
export class DashboardClient {
  readonly messages: ServerMessage[] = [];
  closed: { code: number; reason: string } | null = null;

  private constructor(readonly ws: WebSocket) {
    // binaryType is ws's default, nodebuffer: every message is one Buffer (never an ArrayBuffer or a list).
    ws.on('message', (data) => this.messages.push(JSON.parse((data as Buffer).toString()) as ServerMessage));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }

  /** Connects with a token (Authorization header); rejects with the HTTP status when refused. */
  static connect(url: string, token: string | null, headers: Record<string, string> = {}): Promise<DashboardClient> {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}ws`, {
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new DashboardClient(ws)));
      ws.once('unexpected-response', (_req, res) =>
        reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })),
      );
      ws.once('error', reject);
    });
  }

  send(m: ClientMessage): void {
    this.ws.send(JSON.stringify(m));
  }

  /** The first message (from `from` on) that matches, waiting for it. */
  async next<T extends ServerMessage['t']>(
    t: T,
    match: (m: Extract<ServerMessage, { t: T }>) => boolean = () => true,
    ms = 20_000,
    from = 0,
  ): Promise<Extract<ServerMessage, { t: T }>> {
    return waitUntil(
      () =>
        this.messages
          .slice(from)
          .find(
            (m): m is Extract<ServerMessage, { t: T }> => m.t === t && match(m as Extract<ServerMessage, { t: T }>),
          ),
      ms,
      `a ${t} message`,
    );
  }

  /** Every robot view seen so far, the latest of each. */
  robots(): Map<string, Extract<ServerMessage, { t: 'robots' }>['robots'][number]> {
    const all = new Map<string, Extract<ServerMessage, { t: 'robots' }>['robots'][number]>();
    for (const m of this.messages) if (m.t === 'robots') for (const r of m.robots) all.set(r.robot, r);
    return all;
  }

  close(): void {
    this.ws.terminate();
  }
}
