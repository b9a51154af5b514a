/**
 * ROBOT_AGENT_<PATH> overrides for every leaf of the config schema, generated from the schema
 * itself so a key added there is overridable with no further code: mqtt.baseTopic becomes
 * ROBOT_AGENT_MQTT_BASE_TOPIC. Values are converted to the schema's type; an empty value removes
 * the key (so the default applies).
 */
import { nearest } from './key-suggestions.js';

export const ENV_PREFIX = 'ROBOT_AGENT_';

/**
 * ROBOT_AGENT_* variables that are not config keys: the passwords (which never live in the YAML,
 * load-config.ts reads them) and the crash tests' fault injection (main.ts). Any other
 * ROBOT_AGENT_* name that is not a key's is a typo, and an error.
 */
export const ENV_NOT_KEYS: readonly string[] = [
  'ROBOT_AGENT_MQTT_PASSWORD',
  'ROBOT_AGENT_MQTT_EMBEDDED_PASSWORD',
  'ROBOT_AGENT_TEST_KILL_AT',
];
/** ROBOT_AGENT_REGISTRY_PASSWORD_<HOST>, one per registry host. */
export const ENV_NOT_KEY_PREFIXES: readonly string[] = ['ROBOT_AGENT_REGISTRY_PASSWORD_'];

interface SchemaNode {
  type?: string | string[];
  enum?: unknown[];
  properties?: Record<string, SchemaNode>;
}

export interface EnvLeaf {
  envName: string;
  path: string[];
  node: SchemaNode;
}

export function envLeaves(schema: SchemaNode, path: string[] = []): EnvLeaf[] {
  if (schema.properties) {
    return Object.entries(schema.properties).flatMap(([key, child]) => envLeaves(child, [...path, key]));
  }
  return [{ envName: ENV_PREFIX + path.map(toScreamingSnake).join('_'), path, node: schema }];
}

function toScreamingSnake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** Applies the overrides found in env to doc (mutating it); returns problems, one line each. */
export function applyEnvOverrides(doc: Record<string, unknown>, schema: SchemaNode, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  for (const leaf of envLeaves(schema)) {
    const raw = env[leaf.envName];
    if (raw === undefined) continue;
    const dotted = leaf.path.join('.');
    if (raw === '') {
      deleteAt(doc, leaf.path);
      continue;
    }
    const converted = convert(raw, leaf.node);
    if (converted === undefined) {
      problems.push(`${dotted}: ${leaf.envName}${shown(raw, leaf.node)} is not a valid ${describeType(leaf.node)}`);
      continue;
    }
    setAt(doc, leaf.path, converted);
  }
  return problems;
}

/**
 * A ROBOT_AGENT_* variable that names no key would be ignored, and the default it meant to replace
 * would run the robot: one problem each, with the nearest real name.
 */
export function unknownEnvProblems(schema: SchemaNode, env: NodeJS.ProcessEnv): string[] {
  const known = new Map(envLeaves(schema).map((leaf) => [leaf.envName, leaf.path.join('.')]));
  const names = [...known.keys(), ...ENV_NOT_KEYS];
  const problems: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith(ENV_PREFIX) || known.has(name) || ENV_NOT_KEYS.includes(name)) continue;
    if (ENV_NOT_KEY_PREFIXES.some((prefix) => name.startsWith(prefix) && name.length > prefix.length)) continue;
    const guess = nearest(
      name.slice(ENV_PREFIX.length),
      names.map((n) => n.slice(ENV_PREFIX.length)),
    );
    const key = guess === undefined ? undefined : known.get(ENV_PREFIX + guess);
    const hint =
      guess === undefined
        ? 'see docs/configuration.md for every key and its variable'
        : `did you mean ${ENV_PREFIX}${guess}${key === undefined ? '' : ` (${key})`}?`;
    problems.push(`${name}: is not a setting of the agent (the environment variable would be ignored); ${hint}`);
  }
  return problems;
}

function convert(raw: string, node: SchemaNode): unknown {
  const types = node.type === undefined ? [] : Array.isArray(node.type) ? node.type : [node.type];
  const numericEnum = node.enum?.every((v) => typeof v === 'number') ?? false;
  if (types.includes('integer') || types.includes('number') || numericEnum) {
    const n = Number(raw.trim());
    return raw.trim() !== '' && Number.isFinite(n) ? n : undefined;
  }
  if (types.includes('boolean')) {
    if (/^(true|1|yes|on)$/i.test(raw)) return true;
    if (/^(false|0|no|off)$/i.test(raw)) return false;
    return undefined;
  }
  if (types.includes('array') || types.includes('object')) {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      return undefined;
    }
  }
  return raw;
}

/**
 * The refused value, when it is safe to print: a short number, boolean or enum. A JSON object or
 * array (ROBOT_AGENT_CONTAINERS) may hold passwords in a container's env, so it is never echoed,
 * and neither is JSON.parse's message, which quotes the text around the fault.
 */
function shown(raw: string, node: SchemaNode): string {
  const types = node.type === undefined ? [] : Array.isArray(node.type) ? node.type : [node.type];
  if (types.includes('array') || types.includes('object') || raw.length > 32) return ` (${raw.length} characters)`;
  return `=${JSON.stringify(raw)}`;
}

function describeType(node: SchemaNode): string {
  if (node.enum) return `value (one of ${node.enum.map((v) => JSON.stringify(v)).join(', ')})`;
  const types = node.type === undefined ? [] : Array.isArray(node.type) ? node.type : [node.type];
  if (types.includes('array')) return 'JSON array';
  if (types.includes('object')) return 'JSON object';
  return String(node.type ?? 'value');
}

function setAt(doc: Record<string, unknown>, path: string[], value: unknown): void {
  let cursor = doc;
  for (const key of path.slice(0, -1)) {
    const next = cursor[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cursor[key] = {};
    cursor = cursor[key] as Record<string, unknown>;
  }
  cursor[path[path.length - 1]!] = value;
}

function deleteAt(doc: Record<string, unknown>, path: string[]): void {
  let cursor: unknown = doc;
  for (const key of path.slice(0, -1)) {
    if (typeof cursor !== 'object' || cursor === null) return;
    cursor = (cursor as Record<string, unknown>)[key];
  }
  if (typeof cursor === 'object' && cursor !== null) delete (cursor as Record<string, unknown>)[path[path.length - 1]!];
}
