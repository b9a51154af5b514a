import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { AgentError } from '../../core/errors.js';
import { packageRoot } from '../../core/package-root.js';
import { DEFAULT_STALE_MS } from '../fleet-select.js';
import { ActionRunner } from './actions.js';
import { keepConnected } from './broker-link.js';
import { FleetModel } from './fleet-model.js';
import { createDashboardServer } from './http-server.js';
import { RequestSender } from './send-request.js';
import type { SigningKey } from '../request-signer.js';
import { SocketHub } from './socket-hub.js';
import { loadTokens, type Tokens } from './tokens.js';

export interface DashboardOptions {
  base: string;
  /** An MQTT client already connected to the fleet broker (the dashboard's one connection). */
  client: MqttClient;
  /** The broker account, when replies should come on its own `fleet-replies/<user>/` topics (MQTT 5). */
  replyUser?: string;
  /** Signs every request (robot-fleet --sign-key). */
  signingKey?: SigningKey;
  host: string;
  port: number;
  tokens: Pick<Tokens, 'read' | 'operator'>;
  /** How long the first collection and a quick command may take. */
  timeoutMs: number;
  /** How long an update, snapshot or restore may take to be answered (10 min). */
  longTimeoutMs?: number;
  staleAfterMs?: number;
  pageDir?: string;
  maxRobots?: number;
  /** Where the server says what happens to its broker connection (stderr). */
  log?: (line: string) => void;
}

export interface Dashboard {
  url: string;
  model: FleetModel;
  hub: SocketHub;
  /** What the first collection said about robots the broker held back, or null. */
  warning: string | null;
  close(): Promise<void>;
}

/** Where the build puts the bundled page (scripts/build-page.mjs). */
export function defaultPageDir(): string {
  return join(packageRoot(), 'build', 'dashboard');
}

/** The server on an open broker connection: model, requests, actions, pages, HTTP. */
export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const pageDir = o.pageDir ?? defaultPageDir();
  if (!existsSync(join(pageDir, 'index.html'))) {
    throw new AgentError(
      'page_missing',
      `the dashboard page is not built (no ${join(pageDir, 'index.html')}): run npm run build`,
    );
  }
  const staleAfterMs = o.staleAfterMs ?? DEFAULT_STALE_MS;
  const model = new FleetModel(o.client, {
    base: o.base,
    timeoutMs: o.timeoutMs,
    ...(o.maxRobots ? { maxRobots: o.maxRobots } : {}),
  });
  const sender = new RequestSender(o.client, {
    base: o.base,
    ...(o.replyUser ? { replyUser: o.replyUser } : {}),
    ...(o.signingKey ? { signingKey: o.signingKey } : {}),
  });
  await sender.start();
  let hub: SocketHub | undefined;
  const actions = new ActionRunner(sender, (m) => hub?.broadcast(m), {
    timeoutMs: o.timeoutMs,
    longTimeoutMs: o.longTimeoutMs ?? 10 * 60_000,
  });
  hub = new SocketHub(model, actions, sender, { base: o.base, staleAfterMs, timeoutMs: o.timeoutMs });
  const unlink = keepConnected(o.client, {
    log: o.log ?? (() => undefined),
    resubscribe: async () => {
      await sender.resubscribe();
      await model.resubscribe();
    },
  });
  const collected = await model.start();
  const warning =
    collected.cut || collected.recovered > 0
      ? 'the broker dropped retained messages past its per-client queue (mosquitto max_queued_messages): set it well ' +
        'above twice the number of robots, as deploy/broker/fleet.conf does (docs/fleet-broker.md)'
      : null;
  const server = createDashboardServer({ pageDir, tokens: o.tokens, hub });
  await listen(server, o.host, o.port);
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}/`,
    model,
    hub,
    warning,
    close: async () => {
      unlink();
      hub!.close();
      model.stop();
      sender.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new AgentError('listen_failed', `the dashboard cannot listen on ${host}:${port} (${err.code ?? err.message})`),
      ),
    );
    server.listen(port, host, () => resolve());
  });
}

/** `--listen HOST:PORT` (IPv6 in brackets); 127.0.0.1:8080 by default: only this machine. */
export function parseListen(value: string | undefined): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(value ?? '127.0.0.1:8080');
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw new AgentError('usage', `--listen takes HOST:PORT (e.g. 127.0.0.1:8080), not ${value}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Where generated tokens are kept when no --state-dir is given. */
export function defaultDashboardDir(env: NodeJS.ProcessEnv): string {
  if (process.getuid?.() === 0) return '/var/lib/robot-fleet';
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'robot-fleet');
}

export interface ServeDeps {
  connect(protocolVersion: 4 | 5): Promise<MqttClient>;
  out(s: string): void | Promise<void>;
  err(s: string): void | Promise<void>;
  /** Resolves when the server should stop (SIGINT/SIGTERM). */
  stopped: Promise<void>;
}

/** `robot-fleet serve`: runs until stopped; 0 after a clean stop. */
export async function serveCommand(
  o: {
    base: string;
    timeoutMs: number;
    replyUser?: string;
    listen?: string;
    tokenFile?: string;
    operatorTokenFile?: string;
    stateDir: string;
    staleAfterMs?: number;
    signingKey?: SigningKey;
  },
  d: ServeDeps,
): Promise<number> {
  const { host, port } = parseListen(o.listen);
  const tokens = loadTokens({
    stateDir: o.stateDir,
    ...(o.tokenFile ? { readFile: o.tokenFile } : {}),
    ...(o.operatorTokenFile ? { operatorFile: o.operatorTokenFile } : {}),
  });
  const client = await d.connect(o.replyUser ? 5 : 4);
  let dashboard: Dashboard;
  try {
    dashboard = await startDashboard({
      base: o.base,
      client,
      host,
      port,
      tokens,
      timeoutMs: o.timeoutMs,
      log: (line) => void d.err(`robot-fleet serve: ${line}`),
      ...(o.replyUser ? { replyUser: o.replyUser } : {}),
      ...(o.staleAfterMs ? { staleAfterMs: o.staleAfterMs } : {}),
      ...(o.signingKey ? { signingKey: o.signingKey } : {}),
    });
  } catch (e) {
    await client.endAsync(true);
    throw e;
  }
  if (dashboard.warning) await d.err(`robot-fleet: warning: ${dashboard.warning}`);
  await d.out(`robot-fleet serve: ${dashboard.model.robots.size} robots; dashboard on ${dashboard.url}`);
  if (tokens.generated) {
    // Printed this once: afterwards they are only in their files (mode 0600).
    await d.out(`read-only: ${dashboard.url}login?token=${tokens.read}`);
    await d.out(`operator:  ${dashboard.url}login?token=${tokens.operator}`);
    await d.out(`(kept in ${tokens.files.read} and ${tokens.files.operator}, printed only this once)`);
  } else {
    await d.out(
      `tokens: ${tokens.files.read} (read-only), ${tokens.files.operator} (operator); open ${dashboard.url}login?token=...`,
    );
  }
  await d.stopped;
  await dashboard.close();
  await client.endAsync(true);
  return 0;
}
