import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { extname, join } from 'node:path';
import { WebSocketServer } from 'ws';
import { LIMITS } from './protocol.js';
import type { SocketHub } from './socket-hub.js';
import { roleOf, type Role, type Tokens } from './tokens.js';

export const COOKIE = 'robot_fleet_token';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

/** No framing by other sites, no scripts but ours, no token leaking through a Referer. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

export interface DashboardServerOptions {
  /** The bundled page: index.html, app.js, app.css. */
  pageDir: string;
  tokens: Pick<Tokens, 'read' | 'operator'>;
  hub: SocketHub;
}

/**
 * The page's files and its WebSocket, each only with a token: the `Authorization: Bearer` header,
 * or the cookie `/login?token=` sets (HttpOnly, SameSite=Strict) and then redirects to the page.
 */
export function createDashboardServer(o: DashboardServerOptions): Server {
  const wss = new WebSocketServer({ noServer: true, maxPayload: LIMITS.clientMessageBytes });
  const server = createServer((req, res) => {
    void serve(req, res, o).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('the dashboard failed to answer this request\n');
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const refuse = (status: number, why: string) => {
      socket.end(`HTTP/1.1 ${status} ${why}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${why}\n`);
    };
    // Before any token: a request line no URL parser takes (GET http://[ ...) is refused here,
    // never thrown out of this listener, where it would stop the server for every operator.
    if (pathOf(req.url) !== '/ws') return refuse(404, 'Not Found');
    // A page of another site must not use the operator's cookie to drive the fleet.
    const origin = req.headers.origin;
    if (origin !== undefined && hostOf(origin) !== req.headers.host) return refuse(403, 'Forbidden');
    const role = roleOfRequest(req, o.tokens);
    if (!role) return refuse(401, 'Unauthorized');
    wss.handleUpgrade(req, socket, head, (ws) => o.hub.attach(ws, role));
  });
  server.on('close', () => wss.close());
  return server;
}

/**
 * `; Secure` when the page was asked for over TLS: serve speaks plain HTTP, so that means a TLS
 * proxy in front that says so (X-Forwarded-Proto: https). A browser then never sends the token
 * over plain HTTP. Believing the header costs nothing: a client that lies about it only gets a
 * cookie its own browser will not send back over plain HTTP.
 */
function secureFlag(req: IncomingMessage): string {
  const forwarded = req.headers['x-forwarded-proto'];
  const proto = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim().toLowerCase();
  const tls = (req.socket as { encrypted?: boolean }).encrypted === true;
  return tls || proto === 'https' ? '; Secure' : '';
}

async function serve(req: IncomingMessage, res: ServerResponse, o: DashboardServerOptions): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', ...SECURITY_HEADERS }).end();
    return;
  }
  if (url.pathname === '/login') {
    const token = url.searchParams.get('token');
    if (!roleOf(token, o.tokens)) return unauthorized(res);
    res
      .writeHead(303, {
        location: '/',
        'set-cookie': `${COOKIE}=${encodeURIComponent(token!)}; HttpOnly; SameSite=Strict; Path=/${secureFlag(req)}`,
        'cache-control': 'no-store',
        ...SECURITY_HEADERS,
      })
      .end();
    return;
  }
  if (!roleOfRequest(req, o.tokens)) return unauthorized(res);
  const name = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
  // Only the bundle's own files: one name, no path.
  if (!/^[\w][\w.-]*$/.test(name)) return notFound(res);
  let body: Buffer;
  try {
    body = await readFile(join(o.pageDir, name));
  } catch {
    return notFound(res);
  }
  res.writeHead(200, {
    'content-type': TYPES[extname(name)] ?? 'application/octet-stream',
    'content-length': body.length,
    'cache-control': 'no-store',
    ...SECURITY_HEADERS,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** The token of a request: its Authorization header, else its cookie. */
export function roleOfRequest(req: IncomingMessage, tokens: Pick<Tokens, 'read' | 'operator'>): Role | null {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return roleOf(auth.slice(7).trim(), tokens);
  const cookie = (req.headers.cookie ?? '').split(/;\s*/).find((c) => c.startsWith(`${COOKIE}=`));
  if (!cookie) return null;
  try {
    return roleOf(decodeURIComponent(cookie.slice(COOKIE.length + 1)), tokens);
  } catch {
    return null;
  }
}

function pathOf(url: string | undefined): string | null {
  try {
    return new URL(url ?? '/', 'http://x').pathname;
  } catch {
    return null;
  }
}

function hostOf(origin: string): string | null {
  try {
    return new URL(origin).host;
  } catch {
    return null;
  }
}

function unauthorized(res: ServerResponse): void {
  res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...SECURITY_HEADERS });
  res.end(
    'This dashboard needs a token: open the /login?token=... address robot-fleet serve printed, ' +
      'or ask whoever runs it (docs/dashboard.md).\n',
  );
}

function notFound(res: ServerResponse): void {
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS }).end('not found\n');
}
