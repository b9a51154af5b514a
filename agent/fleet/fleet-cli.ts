import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { AgentEvent } from '../state/event-bus.js';
import type { StateSummary } from '../state/summary.js';
import { renderEvent, renderFleetTable, renderRobotDetail, type RobotDetail, type RobotView } from './fleet-view.js';
import { urlForPrinting } from '../config/url-credentials.js';
import { SecretSet } from '../core/logger.js';

const USAGE = `robot-fleet: the whole fleet from one terminal, over the fleet broker.

  robot-fleet [options] list [--json]                     every robot: online, devices, containers, update
  robot-fleet [options] status <robot> [--json]           one robot in detail, from its retained state sections
  robot-fleet [options] watch [robot]                     the event stream, with progress bars
  robot-fleet [options] send <robot> <command> [json]     a command; prints the response, exit 0 if ok
  robot-fleet [options] update <robot> <container> <image> [--force]
  robot-fleet [options] snapshot <robot> <container> [--push] [--message TEXT]

options: --broker URL (or ROBOT_FLEET_BROKER; default mqtt://127.0.0.1:1883), --base TOPIC (fleet),
         --username U (or ROBOT_FLEET_USERNAME) and --password-file F (or ROBOT_FLEET_PASSWORD_FILE, or the
         password itself in ROBOT_FLEET_PASSWORD), TLS (mqtts://): --ca FILE (ROBOT_FLEET_CA) to verify the
         broker, --cert FILE and --key FILE (ROBOT_FLEET_CERT, ROBOT_FLEET_KEY) for a broker that requires
         client certificates; --timeout SECONDS (60),
         --state-dir DIR (or ROBOT_FLEET_STATE_DIR; default /var/lib/robot-agent): on a robot, with a
         loopback broker and no password given, the embedded broker's password is read from
         DIR/embedded-broker.password (as user robot-agent unless --username)
exit codes: 0 ok, 1 the robot answered with an error, 2 usage, 3 no answer in time or no broker`;

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
}

const DEFAULT_STATE_DIR = '/var/lib/robot-agent';
const EMBEDDED_PASSWORD_FILE = 'embedded-broker.password';
const EMBEDDED_DEFAULT_USERNAME = 'robot-agent';
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/;

class UsageError extends Error {}

/** Splits `--name value` options (and boolean flags) from positional arguments. */
function parse(argv: string[], env: NodeJS.ProcessEnv): { options: Options; flags: Record<string, string | true>; args: string[] } {
  const flags: Record<string, string | true> = {};
  const args: string[] = [];
  const valued = new Set([
    'broker', 'base', 'username', 'password-file', 'ca', 'cert', 'key', 'timeout', 'message', 'state-dir',
  ]);
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const name = a.slice(2);
      if (valued.has(name)) {
        const value = argv[i + 1];
        if (value === undefined) throw new UsageError(`--${name} needs a value`);
        flags[name] = value;
        i += 1;
      } else flags[name] = true;
    } else args.push(a);
  }
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
      : env.ROBOT_FLEET_PASSWORD ? { password: env.ROBOT_FLEET_PASSWORD } : {}),
    ...tls,
  };
  if ((options.ca ?? options.cert) !== undefined && !/^(mqtts|wss|ssl|tls):/.test(options.broker)) {
    // As the agent's config check: the TLS files would be ignored and the link would be plaintext.
    throw new UsageError(`--ca/--cert need a TLS broker URL (mqtts://...), not ${urlForPrinting(options.broker)}`);
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

async function connect(o: Options): Promise<MqttClient> {
  const options: IClientOptions = {
    clientId: `robot-fleet-${randomUUID().slice(0, 8)}`,
    protocolVersion: 4,
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

/** Retained states and availabilities arrive right after subscribing; a short quiet period ends the list. */
async function list(o: Options, json: boolean, out: (s: string) => void): Promise<number> {
  const client = await connect(o);
  const robots = new Map<string, RobotView>();
  const view = (robot: string) => robots.get(robot) ?? robots.set(robot, { robot, online: null, state: null }).get(robot)!;
  let last = Date.now();
  client.on('message', (topic, payload) => {
    const [, robot, kind] = topic.slice(o.base.length).split('/');
    if (!robot) return;
    last = Date.now();
    if (kind === 'availability') view(robot).online = payload.toString() === 'online';
    if (kind === 'state') {
      try {
        view(robot).state = JSON.parse(payload.toString()) as StateSummary;
      } catch {
        // A robot that sent something unreadable still shows, without state.
      }
    }
  });
  await client.subscribeAsync([`${o.base}/+/state`, `${o.base}/+/availability`], { qos: 1 });
  const deadline = Date.now() + Math.min(o.timeoutMs, 5000);
  while (Date.now() < deadline && Date.now() - last < 500) await new Promise((r) => setTimeout(r, 50));
  await client.endAsync();
  out(json ? JSON.stringify([...robots.values()], null, 2) : renderFleetTable([...robots.values()]));
  return 0;
}

/** The summary, the sections and availability of one robot: all retained, they come at once. */
async function status(o: Options, robot: string, json: boolean, out: (s: string) => void): Promise<number> {
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
    out(`nothing retained for ${robot} under ${o.base}/ (is the name right? robot-fleet list)`);
    return 3;
  }
  out(json ? JSON.stringify(detail, null, 2) : renderRobotDetail(detail));
  return 0;
}

async function watch(o: Options, robot: string | undefined, out: (s: string) => void): Promise<number> {
  const client = await connect(o);
  client.on('message', (topic, payload) => {
    const [, name] = topic.slice(o.base.length).split('/');
    try {
      out(renderEvent(name ?? '?', JSON.parse(payload.toString()) as AgentEvent));
    } catch {
      out(`${name} (unreadable event)`);
    }
  });
  await client.subscribeAsync(`${o.base}/${robot ?? '+'}/events`, { qos: 1 });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    client.once('close', resolve);
  });
  await client.endAsync(true);
  return 0;
}

async function send(o: Options, robot: string, command: string, body: Record<string, unknown>, out: (s: string) => void): Promise<number> {
  const client = await connect(o);
  const id = `fleet-${randomUUID()}`;
  const b = `${o.base}/${robot}`;
  try {
    const answer = new Promise<{ ok: boolean }>((resolve) => {
      client.on('message', (topic, payload) => {
        if (topic !== `${b}/response/${command}`) return;
        try {
          const response = JSON.parse(payload.toString()) as { id: unknown; ok: boolean };
          if (response.id === id) {
            out(JSON.stringify(response, null, 2));
            resolve(response);
          }
        } catch {
          // Not ours.
        }
      });
    });
    await client.subscribeAsync(`${b}/response/${command}`, { qos: 1 });
    await client.publishAsync(`${b}/request/${command}`, JSON.stringify({ ...body, id }), { qos: 1 });
    const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), o.timeoutMs).unref());
    const response = await Promise.race([answer, timeout]);
    if (response === null) {
      out(`no answer from ${robot} to ${command} within ${o.timeoutMs / 1000} s (is it online? robot-fleet list)`);
      return 3;
    }
    return response.ok ? 0 : 1;
  } finally {
    await client.endAsync(true);
  }
}

export async function main(argv: string[], env: NodeJS.ProcessEnv, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  try {
    const { options, flags, args } = parse(argv, env);
    const [command, ...rest] = args;
    switch (command) {
      case 'list':
        return await list(options, flags.json === true, out);
      case 'status': {
        if (!rest[0]) throw new UsageError('status needs <robot>');
        return await status(options, rest[0], flags.json === true, out);
      }
      case 'watch':
        return await watch(options, rest[0], out);
      case 'send': {
        const [robot, name, json] = rest;
        if (!robot || !name) throw new UsageError('send needs <robot> <command> [json]');
        let body: unknown = {};
        try {
          body = json ? JSON.parse(json) : {};
        } catch {
          throw new UsageError(`the arguments must be a JSON object, got ${json}`);
        }
        if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new UsageError('the arguments must be a JSON object');
        return await send(options, robot, name, body as Record<string, unknown>, out);
      }
      case 'update': {
        const [robot, container, image] = rest;
        if (!robot || !container || !image) throw new UsageError('update needs <robot> <container> <image>');
        return await send(options, robot, 'update', { container, image, ...(flags.force ? { force: true } : {}) }, out);
      }
      case 'snapshot': {
        const [robot, container] = rest;
        if (!robot || !container) throw new UsageError('snapshot needs <robot> <container>');
        return await send(options, robot, 'snapshot', { container, ...(flags.push ? { push: true } : {}), ...(typeof flags.message === 'string' ? { message: flags.message } : {}) }, out);
      }
      case undefined:
      case 'help':
        out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`robot-fleet: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    err(`robot-fleet: ${(e as Error).message}`);
    return (e as { exitCode?: number }).exitCode ?? 3;
  }
}
