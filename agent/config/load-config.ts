import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import cron from 'node-cron';
import { parseDocument } from 'yaml';
import { AgentError } from '../core/errors.js';
import { compileSchema } from '../core/json-schema.js';
import { allowedReference, parseImageReference } from '../core/image-reference.js';
import { packageRoot } from '../core/package-root.js';
import { readCommandKeys } from './command-keys.js';
import { loadVerifyRules, readSigningKey } from './image-keys.js';
import { applyEnvOverrides, unknownEnvProblems } from './env-overrides.js';
import { explainUnknownKeys } from './key-suggestions.js';
import { hasUserinfo, urlForPrinting } from './url-credentials.js';
import type { AgentConfig, LoadedConfig, Secrets } from './types.js';

/** Thrown with every problem found, so an operator fixes the file in one go. Exit code 2. */
export class ConfigError extends AgentError {
  constructor(
    readonly problems: string[],
    source: string,
  ) {
    super('config_invalid', `${source}: ${problems.length} problem(s) in the configuration`, { details: { problems } });
  }
}

export interface LoadConfigOptions {
  /** The YAML file; config/default.yaml of the package when unset. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  hostname?: string;
}

export function defaultConfigFile(): string {
  return join(packageRoot(), 'config', 'default.yaml');
}

export function loadConfigSchema(): object {
  return JSON.parse(readFileSync(join(packageRoot(), 'config', 'schema.json'), 'utf8')) as object;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** Reads, overrides, validates and completes the configuration, and reads its secrets. */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const source = options.file ?? defaultConfigFile();
  const env = options.env ?? process.env;
  const schema = loadConfigSchema();

  const doc = readYaml(source);
  const problems = [...unknownEnvProblems(schema, env), ...applyEnvOverrides(doc, schema, env)];

  const robot = (doc.robot ??= {}) as Record<string, unknown>;
  if (robot.id === undefined) robot.id = sanitizeHostname(options.hostname ?? osHostname());

  const validate = compileSchema<AgentConfig>(schema, { useDefaults: true });
  problems.push(...explainUnknownKeys(validate.problems(doc), schema));
  if (problems.length > 0) throw new ConfigError(problems, source);

  const config = doc as unknown as AgentConfig;
  problems.push(...crossFieldProblems(config));
  const secrets = readSecrets(config, env, problems);
  const commandKeys = readCommandKeys(config, problems);
  if (problems.length > 0) throw new ConfigError(problems, source);
  return { config, secrets, source, commandKeys };
}

function readYaml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`(file): cannot read ${file}: ${(err as Error).message}`], file);
  }
  const parsed = parseDocument(text);
  if (parsed.errors.length > 0) {
    throw new ConfigError(
      parsed.errors.map(
        (e) =>
          `(yaml) line ${e.linePos?.[0]?.line ?? '?'}: ${(e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`,
      ),
      file,
    );
  }
  const value = parsed.toJS() as unknown;
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value))
    throw new ConfigError(['(top level): must be a mapping of keys'], file);
  return value as Record<string, unknown>;
}

/** Host names may hold characters MQTT topics or the schema refuse; keep what is safe. */
function sanitizeHostname(name: string): string {
  const cleaned = name
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 64);
  return cleaned === '' ? 'robot' : cleaned;
}

function crossFieldProblems(config: AgentConfig): string[] {
  const problems: string[] = [];
  const { mqtt } = config;
  if ((mqtt.cert === undefined) !== (mqtt.key === undefined)) {
    problems.push(`mqtt.${mqtt.cert === undefined ? 'cert' : 'key'}: mqtt.cert and mqtt.key go together (mutual TLS)`);
  }
  if (mqtt.url !== undefined && (mqtt.ca ?? mqtt.cert) !== undefined && !/^(mqtts|wss|ssl|tls):/.test(mqtt.url)) {
    // Otherwise the TLS files would be ignored and the link would speak plaintext.
    const scheme = mqtt.url.split('://')[0];
    problems.push(`mqtt.url: ${scheme}:// is plaintext, but mqtt.ca/mqtt.cert are set: use mqtts:// (or wss://)`);
  }
  if (mqtt.url !== undefined && hasUserinfo(mqtt.url)) {
    problems.push(
      `mqtt.url: holds a user name or password (${urlForPrinting(mqtt.url)}); a URL is printed in logs and by ` +
        'check-config: put the user in mqtt.username and the password in the file named by mqtt.passwordFile',
    );
  }
  for (const [host, registry] of Object.entries(config.registries)) {
    if (registry.mirror !== undefined && hasUserinfo(registry.mirror)) {
      problems.push(
        `registries.${host}.mirror: holds a user name or password (${urlForPrinting(registry.mirror)}); put them in ` +
          `registries.${host}.username and the file named by registries.${host}.passwordFile`,
      );
    }
  }
  if (mqtt.passwordFile !== undefined && mqtt.username === undefined) {
    problems.push('mqtt.username: is required when mqtt.passwordFile is set');
  }
  const embedded = mqtt.embedded;
  if (
    mqtt.url === undefined &&
    !LOOPBACK.test(embedded.host) &&
    (embedded.username === undefined || embedded.passwordFile === undefined)
  ) {
    problems.push(
      `mqtt.embedded.host: binding the embedded broker to ${embedded.host} (beyond loopback) requires mqtt.embedded.username and mqtt.embedded.passwordFile`,
    );
  }
  // On loopback either may be left out: the username defaults to robot-agent and, without a
  // passwordFile, the agent makes a password in state.dir (embedded-password.ts).
  problems.push(...containerProblems(config));
  // images.verify: every key file readable and an ECDSA P-256 public key, or the agent does not start.
  loadVerifyRules(config.images.verify ?? [], problems);
  if (config.snapshots.signKeyFile !== undefined) {
    try {
      readSigningKey(config.snapshots.signKeyFile);
    } catch (err) {
      problems.push(`snapshots.signKeyFile: ${(err as Error).message}`);
    }
  }
  for (const name of config.snapshots.containers) {
    if (!Object.hasOwn(config.containers, name))
      problems.push(`snapshots.containers: ${name} is not a container of this config`);
  }
  try {
    parseImageReference(`${config.snapshots.repository}:x`);
  } catch (err) {
    problems.push(`snapshots.repository: ${(err as Error).message}`);
  }
  for (const [key, expression] of [
    ['update.window.cron', config.update.window?.cron],
    ['update.check', config.update.check],
    ['snapshots.schedule', config.snapshots.schedule],
  ] as const) {
    if (expression !== undefined && !cron.validate(expression))
      problems.push(`${key}: "${expression}" is not a cron expression (five or six fields, e.g. "0 2 * * *")`);
  }
  return problems;
}

/** A container the robot's own config could never run is a mistake to report now, not at 3 a.m. */
function containerProblems(config: AgentConfig): string[] {
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(config.containers)) {
    try {
      allowedReference(spec.image, config.images.allow);
    } catch (err) {
      problems.push(`containers.${name}.image: ${(err as Error).message}`);
    }
    for (const device of spec.required) {
      if (!spec.devices.includes(device))
        problems.push(`containers.${name}.required: ${device} is required but not among its devices`);
    }
  }
  return problems;
}

function readSecrets(config: AgentConfig, env: NodeJS.ProcessEnv, problems: string[]): Secrets {
  const secrets: Secrets = {};
  const mqttPassword = secretFrom(
    env.ROBOT_AGENT_MQTT_PASSWORD,
    config.mqtt.passwordFile,
    'mqtt.passwordFile',
    problems,
  );
  if (mqttPassword !== undefined) secrets.mqttPassword = mqttPassword;
  const embeddedPassword = secretFrom(
    env.ROBOT_AGENT_MQTT_EMBEDDED_PASSWORD,
    config.mqtt.embedded.passwordFile,
    'mqtt.embedded.passwordFile',
    problems,
  );
  if (embeddedPassword !== undefined) secrets.embeddedPassword = embeddedPassword;
  if (config.images.dockerConfig !== undefined) {
    const auths = readDockerConfigAuths(config.images.dockerConfig, problems);
    if (auths) secrets.dockerConfigAuths = auths;
  }
  for (const [host, registry] of Object.entries(config.registries)) {
    const envName = `ROBOT_AGENT_REGISTRY_PASSWORD_${host.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
    const password = secretFrom(env[envName], registry.passwordFile, `registries.${host}.passwordFile`, problems);
    if (password !== undefined) (secrets.registryPasswords ??= {})[host] = password;
    if (registry.passwordFile !== undefined && registry.username === undefined)
      problems.push(`registries.${host}.username: is required with a passwordFile`);
  }
  return secrets;
}

/**
 * `auths` of a Docker config.json: {"host": {"auth": base64("user:password")}}. Docker Hub is
 * written as https://index.docker.io/v1/; credential helpers (credsStore) are not followed.
 */
function readDockerConfigAuths(
  file: string,
  problems: string[],
): Record<string, { username: string; password: string }> | undefined {
  let doc: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    doc = JSON.parse(readFileSync(file, 'utf8')) as typeof doc;
  } catch (err) {
    // JSON.parse's message quotes the text around the fault: the credentials themselves.
    const why =
      err instanceof SyntaxError ? 'it is not valid JSON' : ((err as NodeJS.ErrnoException).code ?? 'unreadable');
    problems.push(`images.dockerConfig: cannot read ${file}: ${why}`);
    return undefined;
  }
  const auths: unknown = typeof doc === 'object' && doc !== null ? doc.auths : null;
  if (auths !== undefined && (typeof auths !== 'object' || auths === null)) {
    problems.push(`images.dockerConfig: ${file} is not a Docker config.json (an object with "auths")`);
    return undefined;
  }
  const out: Record<string, { username: string; password: string }> = {};
  for (const [key, entry] of Object.entries(doc.auths ?? {})) {
    const host = key
      .replace(/^https?:\/\//, '')
      .replace(/\/.*$/, '')
      .replace(/^(index|registry-1)\.docker\.io$/, 'docker.io');
    const decoded = entry.auth
      ? Buffer.from(entry.auth, 'base64').toString('utf8')
      : `${entry.username ?? ''}:${entry.password ?? ''}`;
    const colon = decoded.indexOf(':');
    if (colon > 0) out[host] = { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return out;
}

/** The environment wins over the file, as for every other key. */
function secretFrom(
  envValue: string | undefined,
  file: string | undefined,
  key: string,
  problems: string[],
): string | undefined {
  if (envValue !== undefined && envValue !== '') return envValue;
  if (file === undefined) return undefined;
  try {
    const value = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    if (value === '') problems.push(`${key}: ${file} is empty`);
    return value;
  } catch (err) {
    problems.push(`${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return undefined;
  }
}
