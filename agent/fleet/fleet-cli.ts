import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { AgentEvent } from '../state/event-bus.js';
import type { StateSummary } from '../mqtt/summary.js';
import { renderEvent, renderFleetTable, renderRobotDetail, renderTotals, type RobotDetail } from './fleet-view.js';
import { collectFleet, type Collected } from './fleet-collect.js';
import {
  DEFAULT_STALE_MS,
  SORT_KEYS,
  filterRobots,
  fleetTotals,
  liveness,
  seenAgo,
  sortRobots,
  type Filters,
  type SortKey,
} from './fleet-select.js';
import { urlForPrinting } from '../config/url-credentials.js';
import { SecretSet } from '../core/logger.js';
import { publishDesired } from './fleet-desired.js';
import { keygen } from './fleet-keygen.js';
import { loadSigningKey, signMessage, type SigningKey } from './request-signer.js';
import { defaultDashboardDir, parseListen, serveCommand } from './dashboard/serve.js';
import { signCommand } from './fleet-sign.js';
import { splitOptions } from './cli-options.js';
import { cliAction, commandHelp, commandsIn, EXIT_OK, EXIT_USAGE, usageErrorText } from '../core/cli-conventions.js';
import { agentVersion } from '../core/package-root.js';

/**
 * A new command is one line here (`  robot-fleet [options] <command> ...`, more indented lines under
 * it for details) and one `$ robot-fleet <command> ...` line under examples: its `-h`/`--help` and
 * `help <command>` then work (agent/core/cli-conventions.ts), plus one `case` in main.
 */
const USAGE = `robot-fleet: the whole fleet from one terminal, over the fleet broker.

  robot-fleet [options] list [--json] [filters] [--sort name|status|seen|disk] [--stale SECONDS]
                                                          every robot: online, devices, containers, update; totals
        filters (all must hold): --online, --offline (offline or stale), --degraded (degraded or error),
        --outdated, --name PATTERN (* and ?); a summary older than --stale (180 s: three heartbeats of
        60 s) is STALE even when online; offline and stale rows show their last status as "was ..."
  robot-fleet [options] status <robot> [--json]           one robot in detail, from its retained state sections
  robot-fleet [options] watch [robot]                     the fleet as it is (as list), then its events as they
                                                          happen, with progress bars
  robot-fleet [options] send <robot> <command> [json]     a command; prints the response, exit 0 if ok
  robot-fleet [options] update <robot> <container> <image> [--force]
  robot-fleet [options] snapshot <robot> <container> [--push] [--message TEXT]
  robot-fleet [options] desired <robot> <json>            the robot's desired state, retained (signed with --sign-key)
  robot-fleet keygen --out DIR                            a key pair for signing commands; prints its kid
  robot-fleet [options] serve [--listen 127.0.0.1:8080] [--token-file F] [--operator-token-file F]
                                                          the fleet dashboard: a web page (docs/dashboard.md)
  robot-fleet sign <image> --key FILE | --keygen FILE   sign an image for images.verify (robot-fleet sign help)

options: --broker URL (or ROBOT_FLEET_BROKER; default mqtt://127.0.0.1:1883), --base TOPIC (fleet),
         --username U (or ROBOT_FLEET_USERNAME) and --password-file F (or ROBOT_FLEET_PASSWORD_FILE, or the
         password itself in ROBOT_FLEET_PASSWORD), TLS (mqtts://): --ca FILE (ROBOT_FLEET_CA) to verify the
         broker, --cert FILE and --key FILE (ROBOT_FLEET_CERT, ROBOT_FLEET_KEY) for a broker that requires
         client certificates; --timeout SECONDS (60),
         --sign-key FILE (or ROBOT_FLEET_SIGN_KEY): sign send/update/snapshot/desired and serve's actions
         with this Ed25519 key, under its thumbprint as kid unless --sign-kid ID (ROBOT_FLEET_SIGN_KID),
         --state-dir DIR (or ROBOT_FLEET_STATE_DIR; default /var/lib/robot-agent): on a robot, with a
         loopback broker and no password given, the embedded broker's password is read from
         DIR/embedded-broker.password (as user robot-agent unless --username)
  robot-fleet --version                                   robot-fleet's version (the agent's package)
  robot-fleet [command] -h|--help                         this help, or a command's

examples:
  $ robot-fleet --broker mqtts://fleet.example:8883 --ca ca.pem --username ops --password-file ops.pw list --offline
  $ robot-fleet list --degraded --sort seen
  $ robot-fleet status rosmaster-07
  $ robot-fleet watch rosmaster-07
  $ robot-fleet send rosmaster-07 ping
  $ robot-fleet send rosmaster-07 container.restart '{"name":"ros"}'
  $ robot-fleet update rosmaster-07 ros registry.lab.example/ros:1.4.2
  $ robot-fleet snapshot rosmaster-07 ros --push --message "before the demo"
  $ robot-fleet keygen --out ~/.robot-fleet  (then --sign-key ~/.robot-fleet/<kid>.key signs every command)
  $ robot-fleet desired rosmaster-07 '{"containers":{"ros":{"image":"registry.lab.example/ros:1.4.2"}}}'
  $ robot-fleet --username ops --password-file ops.pw serve --listen 127.0.0.1:8080
  $ robot-fleet sign registry.lab.example/ros:1.4.2 --key fleet.key
  $ sudo robot-fleet list                     (on a robot: its embedded broker, password read from the state dir)
  $ npx robot-fleet list                      (in a clone, after npm ci and npm run build)

exit codes: 0 ok, 1 the robot answered with an error, 2 usage, 3 no answer in time or no broker`;
const PROGRAM = 'robot-fleet';

interface Options {
  broker: string;
  base: string;
  username?: string;
  password?: string;
  /** PEM contents, read at start so a missing file is a usage error, not a failed connection. */
  ca?: string;
  cert?: string;
  key?: string;
  timeoutMs: number;
  /** Said when the broker refuses us: why no password was sent. */
  passwordHint?: string;
  /** Requests are signed with this key file (docs/security.md#signed-commands). */
  signKey?: { file: string; kid?: string };
}

const DEFAULT_STATE_DIR = '/var/lib/robot-agent';
const EMBEDDED_PASSWORD_FILE = 'embedded-broker.password';
const EMBEDDED_DEFAULT_USERNAME = 'robot-agent';
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/;

/** A usage error; command, when known, narrows the usage printed to that command's. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

/** Options that take a value (`--broker URL`). */
const VALUED_OPTIONS = new Set([
  'broker',
  'base',
  'username',
  'password-file',
  'ca',
  'cert',
  'key',
  'timeout',
  'message',
  'state-dir',
  'name',
  'sort',
  'stale',
  'sign-key',
  'sign-kid',
  'out',
  'listen',
  'token-file',
  'operator-token-file',
]);
/** Options that are on or off (`--json`). */
const FLAGS = new Set(['json', 'online', 'offline', 'degraded', 'outdated', 'push', 'force']);

/** Splits `--name value` options (and boolean flags) from positional arguments. */
function parse(
  argv: string[],
  env: NodeJS.ProcessEnv,
): { options: Options; flags: Record<string, string | true>; args: string[] } {
  const { flags, args } = splitOptions(argv, { valued: VALUED_OPTIONS, flags: FLAGS }, (m) => new UsageError(m));
  // A flag wins over its environment variable; an empty variable counts as unset.
  const pick = (flag: string, envName: string): string | undefined =>
    typeof flags[flag] === 'string' ? (flags[flag] as string) : env[envName] || undefined;
  const passwordFile = pick('password-file', 'ROBOT_FLEET_PASSWORD_FILE');
  const timeout = Number(flags.timeout ?? 60);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError('--timeout must be a number of seconds');
  const username = pick('username', 'ROBOT_FLEET_USERNAME');
  const tls = tlsFiles(pick('ca', 'ROBOT_FLEET_CA'), pick('cert', 'ROBOT_FLEET_CERT'), pick('key', 'ROBOT_FLEET_KEY'));
  const options: Options = {
    broker: (flags.broker as string | undefined) ?? env.ROBOT_FLEET_BROKER ?? 'mqtt://127.0.0.1:1883',
    base: (flags.base as string | undefined) ?? 'fleet',
    timeoutMs: timeout * 1000,
    ...(username ? { username } : {}),
    ...(passwordFile
      ? { password: readOption('--password-file', passwordFile).replace(/\r?\n$/, '') }
      : env.ROBOT_FLEET_PASSWORD
        ? { password: env.ROBOT_FLEET_PASSWORD }
        : {}),
    ...tls,
  };
  if ((options.ca ?? options.cert) !== undefined && !/^(mqtts|wss|ssl|tls):/.test(options.broker)) {
    // As the agent's config check: the TLS files would be ignored and the link would be plaintext.
    throw new UsageError(`--ca/--cert need a TLS broker URL (mqtts://...), not ${urlForPrinting(options.broker)}`);
  }
  const signKey = pick('sign-key', 'ROBOT_FLEET_SIGN_KEY');
  if (signKey) {
    readOption('--sign-key', signKey);
    const kid = pick('sign-kid', 'ROBOT_FLEET_SIGN_KID');
    options.signKey = { file: signKey, ...(kid ? { kid } : {}) };
  }
  const stateDir = (flags['state-dir'] as string | undefined) ?? env.ROBOT_FLEET_STATE_DIR ?? DEFAULT_STATE_DIR;
  if (options.password === undefined) embeddedCredentials(options, stateDir);
  return { options, flags, args };
}

/** The TLS files, read now: the same options as the agent's mqtt.ca, mqtt.cert and mqtt.key. */
function tlsFiles(
  ca: string | undefined,
  cert: string | undefined,
  key: string | undefined,
): Pick<Options, 'ca' | 'cert' | 'key'> {
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError('--cert and --key go together (the client certificate and its private key, for mutual TLS)');
  }
  return {
    ...(ca ? { ca: readOption('--ca', ca) } : {}),
    ...(cert ? { cert: readOption('--cert', cert) } : {}),
    ...(key ? { key: readOption('--key', key) } : {}),
  };
}

/** A file an option names; one that cannot be read is the operator's to fix, said with its errno. */
function readOption(option: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new UsageError(`${option}: cannot read ${file} (${why})`);
  }
}

/**
 * The embedded broker requires the password the agent made in its state dir. With a broker on
 * loopback and no password given, that file is read when it is there; when it is there but
 * unreadable (not root), the refusal will say so.
 */
function embeddedCredentials(options: Options, stateDir: string): void {
  let url: URL;
  try {
    url = new URL(options.broker);
  } catch {
    return;
  }
  if (url.protocol !== 'mqtt:' || !LOOPBACK.test(url.hostname)) return;
  const file = join(stateDir, EMBEDDED_PASSWORD_FILE);
  try {
    const password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    if (password === '' || password.length > 1024) return;
    options.password = password;
    options.username ??= EMBEDDED_DEFAULT_USERNAME;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    options.passwordHint = `cannot read ${file} (${code ?? 'error'}): run as root or pass --password-file`;
  }
}

async function connect(o: Options, protocolVersion: 4 | 5 = 4): Promise<MqttClient> {
  const options: IClientOptions = {
    clientId: `robot-fleet-${randomUUID().slice(0, 8)}`,
    protocolVersion,
    reconnectPeriod: 0,
    connectTimeout: Math.min(o.timeoutMs, 10_000),
    ...(o.username ? { username: o.username } : {}),
    ...(o.password ? { password: o.password } : {}),
    // The broker is always verified (as by the agent): against --ca, or the system's CAs.
    rejectUnauthorized: true,
    ...(o.ca ? { ca: o.ca } : {}),
    ...(o.cert ? { cert: o.cert } : {}),
    ...(o.key ? { key: o.key } : {}),
  };
  let client: MqttClient;
  try {
    client = await mqtt.connectAsync(o.broker, options);
  } catch (err) {
    const hint = o.passwordHint ? ` (${o.passwordHint})` : '';
    // --broker mqtt://user:pass@host works, but the terminal and its scrollback never see the pass.
    const secrets = new SecretSet();
    secrets.addCredentials(o.username ?? '', o.password);
    const where = urlForPrinting(o.broker);
    const message = secrets.redact(`cannot reach the fleet broker at ${where}: ${(err as Error).message}${hint}`);
    throw Object.assign(new Error(message), { exitCode: 3 });
  }
  // Requests and their answers are small and interactive: no Nagle delay.
  (client.stream as Partial<Socket> | undefined)?.setNoDelay?.(true);
  return client;
}

type Out = (s: string) => void | Promise<void>;

interface ListOptions {
  json: boolean;
  filters: Filters;
  sort: SortKey;
  staleAfterMs: number;
}

/** The list flags, checked before connecting: a typo is a usage error, not an empty list. */
function listOptions(flags: Record<string, string | true>): ListOptions {
  const sort = flags.sort ?? 'name';
  if (typeof sort !== 'string' || !(SORT_KEYS as readonly string[]).includes(sort)) {
    throw new UsageError(`--sort takes one of ${SORT_KEYS.join(', ')}`);
  }
  if (flags.online === true && flags.offline === true) {
    throw new UsageError('--online and --offline exclude each other');
  }
  if (flags.name === true) throw new UsageError('--name needs a pattern');
  const stale = flags.stale === undefined ? DEFAULT_STALE_MS / 1000 : Number(flags.stale);
  if (!Number.isFinite(stale) || stale <= 0) throw new UsageError('--stale must be a number of seconds');
  const filters: Filters = {
    ...(flags.online === true ? { online: true } : {}),
    ...(flags.offline === true ? { offline: true } : {}),
    ...(flags.degraded === true ? { degraded: true } : {}),
    ...(flags.outdated === true ? { outdated: true } : {}),
    ...(typeof flags.name === 'string' ? { name: flags.name } : {}),
  };
  return { json: flags.json === true, filters, sort: sort as SortKey, staleAfterMs: stale * 1000 };
}

/** What the operator must hear when the broker held robots back, and what to set on it. */
function dropWarning(c: Collected, listed: number): string | null {
  const fix =
    'set max_queued_messages (and max_queued_bytes) on the fleet broker well above twice the number of robots, ' +
    'as deploy/broker/fleet.conf does (docs/fleet-broker.md)';
  if (c.cut) {
    return (
      `warning: the broker dropped retained messages past its per-client queue (mosquitto ` +
      `max_queued_messages, 1000 by default): robots are missing from this list, which has ${listed}; ${fix}`
    );
  }
  if (c.recovered > 0) {
    return (
      `warning: the broker dropped ${c.recovered} retained messages past its per-client queue (mosquitto ` +
      `max_queued_messages); robot-fleet asked for them again and lists every robot with a summary, but ` +
      `dashboards may not: ${fix}`
    );
  }
  return null;
}

/**
 * Every robot's retained summary and availability, then the table (or JSON) with totals. Output
 * waits for the reader: thousands of rows through a pipe arrive whole.
 */
async function list(o: Options, l: ListOptions, out: Out, err: Out): Promise<number> {
  const client = await connect(o);
  let collected: Collected;
  try {
    collected = await collectFleet(client, { base: o.base, timeoutMs: o.timeoutMs });
  } finally {
    await client.endAsync();
  }
  const now = Date.now();
  const all = collected.robots;
  const shown = sortRobots(filterRobots(all, l.filters, now, l.staleAfterMs), l.sort);
  const warning = dropWarning(collected, all.length);
  if (warning) await err(`robot-fleet: ${warning}`);
  if (l.json) {
    const rows = shown.map((r) => ({ ...r, liveness: liveness(r, now, l.staleAfterMs), seenAgo: seenAgo(r, now) }));
    // One robot a line: a fleet's JSON is megabytes, written as it is made rather than at once.
    await out(rows.length === 0 ? '[]' : '[');
    for (let i = 0; i < rows.length; i += 1) await out(`${JSON.stringify(rows[i])}${i < rows.length - 1 ? ',' : ''}`);
    if (rows.length > 0) await out(']');
    return 0;
  }
  const table = renderFleetTable(shown, now, { sort: l.sort, staleAfterMs: l.staleAfterMs });
  await out(table);
  await out(renderTotals(fleetTotals(all, now, l.staleAfterMs), shown.length));
  return 0;
}

/** The summary, the sections and availability of one robot: all retained, they come at once. */
async function status(o: Options, robot: string, json: boolean, out: Out): Promise<number> {
  const client = await connect(o);
  const b = `${o.base}/${robot}`;
  const detail: RobotDetail = { robot, online: null, state: null, sections: {} };
  let last = Date.now();
  client.on('message', (topic, payload) => {
    last = Date.now();
    try {
      if (topic === `${b}/availability`) detail.online = payload.toString() === 'online';
      else if (topic === `${b}/state`) detail.state = JSON.parse(payload.toString()) as StateSummary;
      else if (topic.startsWith(`${b}/state/`)) {
        const section = topic.slice(`${b}/state/`.length);
        Object.assign(detail.sections, { [section]: JSON.parse(payload.toString()) as unknown });
      }
    } catch {
      // An unreadable part is left out; the rest still shows.
    }
  });
  await client.subscribeAsync([`${b}/state`, `${b}/state/+`, `${b}/availability`], { qos: 1 });
  const deadline = Date.now() + Math.min(o.timeoutMs, 5000);
  while (Date.now() < deadline && Date.now() - last < 300) await new Promise((r) => setTimeout(r, 50));
  await client.endAsync();
  if (detail.state === null && detail.online === null) {
    await out(`nothing retained for ${robot} under ${o.base}/ (is the name right? robot-fleet list)`);
    return 3;
  }
  await out(json ? JSON.stringify(detail, null, 2) : renderRobotDetail(detail));
  return 0;
}

/**
 * The fleet as it is (every robot's retained summary: the list table, or one robot's row), then
 * its events as they happen. A blank screen until the first event told an operator nothing.
 * Events are subscribed first and held while the table is read, so none falls between the two.
 */
async function watch(o: Options, robot: string | undefined, out: Out, err: Out): Promise<number> {
  const client = await connect(o);
  const held: string[] = [];
  let live = false;
  const show = (line: string) => (live ? void out(line) : void held.push(line));
  client.on('message', (topic, payload) => {
    if (!topic.endsWith('/events')) return;
    const [, name] = topic.slice(o.base.length).split('/');
    try {
      show(renderEvent(name ?? '?', JSON.parse(payload.toString()) as AgentEvent));
    } catch {
      show(`${name} (unreadable event)`);
    }
  });
  await client.subscribeAsync(`${o.base}/${robot ?? '+'}/events`, { qos: 1 });
  const collected = await collectFleet(client, { base: o.base, timeoutMs: Math.min(o.timeoutMs, 10_000) });
  // The summaries were for the table; from now on only events.
  await client.unsubscribeAsync([`${o.base}/+/state`, `${o.base}/+/availability`]);
  const now = Date.now();
  const wanted = robot === undefined ? collected.robots : collected.robots.filter((r) => r.robot === robot);
  const robots = sortRobots(wanted, 'name');
  const warning = dropWarning(collected, collected.robots.length);
  if (warning) await err(`robot-fleet: ${warning}`);
  if (robots.length === 0) {
    const none = robot === undefined ? 'no robot has reported' : `nothing retained for ${robot}`;
    await out(`${none} under ${o.base}/ yet`);
  } else {
    await out(renderFleetTable(robots, now, { sort: 'name', staleAfterMs: DEFAULT_STALE_MS }));
    await out(renderTotals(fleetTotals(robots, now, DEFAULT_STALE_MS), robots.length));
  }
  await out(`-- events from now on${robot === undefined ? '' : ` (${robot})`}; Ctrl-C to stop --`);
  live = true;
  for (const line of held.splice(0)) await out(line);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    client.once('close', resolve);
  });
  await client.endAsync(true);
  return 0;
}

/** The --sign-key, read before connecting: a wrong file is the operator's to fix, not a broker problem. */
async function signingKey(o: Options): Promise<SigningKey | undefined> {
  if (!o.signKey) return undefined;
  const { file, kid } = o.signKey;
  return loadSigningKey(file, kid).catch((e: unknown) => {
    throw new UsageError(`--sign-key: ${file}: ${(e as Error).message}`);
  });
}

async function send(
  o: Options,
  robot: string,
  command: string,
  body: Record<string, unknown>,
  out: Out,
): Promise<number> {
  const key = await signingKey(o);
  const client = await connect(o);
  const id = `fleet-${randomUUID()}`;
  const b = `${o.base}/${robot}`;
  try {
    const answer = new Promise<{ ok: boolean }>((resolve) => {
      client.on('message', (topic, payload) => {
        if (topic !== `${b}/response/${command}`) return;
        try {
          const response = JSON.parse(payload.toString()) as { id: unknown; ok: boolean };
          if (response.id === id) resolve(response);
        } catch {
          // Not ours.
        }
      });
    });
    await client.subscribeAsync(`${b}/response/${command}`, { qos: 1 });
    const message = { ...body, id };
    const signed = key ? await signMessage({ key, robot, command, message }) : message;
    await client.publishAsync(`${b}/request/${command}`, JSON.stringify(signed), { qos: 1 });
    const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), o.timeoutMs).unref());
    const response = await Promise.race([answer, timeout]);
    if (response === null) {
      await out(
        `no answer from ${robot} to ${command} within ${o.timeoutMs / 1000} s (is it online? robot-fleet list)`,
      );
      return 3;
    }
    // Written here, not in the message handler, so the write is awaited (out may wait for a pipe's reader).
    await out(JSON.stringify(response, null, 2));
    return response.ok ? 0 : 1;
  } finally {
    await client.endAsync(true);
  }
}

function jsonObject(json: string): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(json);
  } catch {
    throw new UsageError(`the arguments must be a JSON object, got ${json}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new UsageError('the arguments must be a JSON object');
  }
  return body as Record<string, unknown>;
}

/** out and err may return a promise: list waits on it, so a pipe's reader sets the pace. */
export async function main(argv: string[], env: NodeJS.ProcessEnv, out: Out, err: Out): Promise<number> {
  // Help and version before anything is parsed or read: `robot-fleet send --help` helps.
  const action = cliAction(argv, commandsIn(USAGE, PROGRAM));
  if (action.kind === 'help') {
    await out(commandHelp(USAGE, PROGRAM, action.command));
    return EXIT_OK;
  }
  if (action.kind === 'version') {
    await out(agentVersion());
    return EXIT_OK;
  }
  // sign takes options of its own (its --key is the signing key, not the broker's TLS key) and no broker.
  const signAt = argv.findIndex((a) => !a.startsWith('-'));
  if (argv[signAt] === 'sign') return signCommand([...argv.slice(0, signAt), ...argv.slice(signAt + 1)], env, out, err);
  try {
    const { options, flags, args } = parse(argv, env);
    const [command, ...rest] = args;
    switch (command) {
      case 'list':
        return await list(options, listOptions(flags), out, err);
      case 'status': {
        if (!rest[0]) throw new UsageError('status needs <robot>');
        return await status(options, rest[0], flags.json === true, out);
      }
      case 'watch':
        return await watch(options, rest[0], out, err);
      case 'send': {
        const [robot, name, json] = rest;
        if (!robot || !name) throw new UsageError('send needs <robot> <command> [json]');
        return await send(options, robot, name, json ? jsonObject(json) : {}, out);
      }
      case 'update': {
        const [robot, container, image] = rest;
        if (!robot || !container || !image) throw new UsageError('update needs <robot> <container> <image>');
        return await send(options, robot, 'update', { container, image, ...(flags.force ? { force: true } : {}) }, out);
      }
      case 'snapshot': {
        const [robot, container] = rest;
        if (!robot || !container) throw new UsageError('snapshot needs <robot> <container>');
        return await send(
          options,
          robot,
          'snapshot',
          {
            container,
            ...(flags.push ? { push: true } : {}),
            ...(typeof flags.message === 'string' ? { message: flags.message } : {}),
          },
          out,
        );
      }
      case 'desired': {
        const [robot, json] = rest;
        if (!robot || !json) throw new UsageError('desired needs <robot> <json>');
        const desired = jsonObject(json);
        const key = await signingKey(options);
        const client = await connect(options);
        try {
          await out(await publishDesired(client, { base: options.base, robot, desired, ...(key ? { key } : {}) }));
        } finally {
          await client.endAsync();
        }
        return 0;
      }
      case 'keygen':
        if (typeof flags.out !== 'string') throw new UsageError('keygen needs --out DIR');
        return await keygen(flags.out, out);
      case 'serve': {
        // Replies on the account's own fleet-replies/ topics only for an account the operator named.
        const replyUser = typeof flags.username === 'string' ? flags.username : env.ROBOT_FLEET_USERNAME || undefined;
        // Checked before connecting, as for list: a typo is a usage error (exit 2).
        const { staleAfterMs } = listOptions(flags);
        try {
          parseListen(typeof flags.listen === 'string' ? flags.listen : undefined);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        const signing = await signingKey(options);
        const stopped = new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        return await serveCommand(
          {
            ...(signing ? { signingKey: signing } : {}),
            base: options.base,
            timeoutMs: options.timeoutMs,
            stateDir:
              (flags['state-dir'] as string | undefined) ?? env.ROBOT_FLEET_STATE_DIR ?? defaultDashboardDir(env),
            ...(replyUser ? { replyUser } : {}),
            ...(typeof flags.listen === 'string' ? { listen: flags.listen } : {}),
            ...(typeof flags['token-file'] === 'string' ? { tokenFile: flags['token-file'] } : {}),
            ...(typeof flags['operator-token-file'] === 'string'
              ? { operatorTokenFile: flags['operator-token-file'] }
              : {}),
            staleAfterMs,
          },
          { connect: (v) => connect(options, v), out, err, stopped },
        );
      }
      case undefined:
        throw new UsageError('no command given');
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      const [first] = argv.filter((a) => commandsIn(USAGE, PROGRAM).includes(a));
      await err(usageErrorText(PROGRAM, e.message, USAGE, e.command ?? first));
      return EXIT_USAGE;
    }
    await err(`robot-fleet: ${(e as Error).message}`);
    return (e as { exitCode?: number }).exitCode ?? 3;
  }
}
