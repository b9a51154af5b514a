import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from '../config/types.js';
import { AgentError } from '../core/errors.js';
import { compileSchema } from '../core/json-schema.js';
import { allowedReference, parseImageReference } from '../images/image-reference.js';
import { packageRoot } from '../package-root.js';
import { readJsonFile, writeJsonFile } from '../state/json-file.js';
import { specHash } from './container-spec.js';
import type { DesiredContainer } from './container-plan.js';

/** What the fleet asked for on <b>/desired, after checks: images are familiar references. */
export interface DesiredMessage {
  containers: Record<string, { image?: string; enabled?: boolean }>;
  version?: string | number;
}

const validate = compileSchema<DesiredMessage>(JSON.parse(readFileSync(join(packageRoot(), 'docs', 'schemas', 'desired.json'), 'utf8')) as object);

/**
 * Reads a <b>/desired payload against the robot's own config: the fleet may choose images and
 * switch containers on or off, only for containers defined here and only within images.allow.
 * An empty payload clears the desired state. Any problem rejects the whole message.
 */
export function parseDesired(payload: Buffer, config: Pick<AgentConfig, 'containers' | 'images'>): DesiredMessage | null {
  if (payload.length === 0) return null;
  let doc: unknown;
  try {
    doc = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new AgentError('bad_json', `desired state is not JSON: ${(err as Error).message}`);
  }
  const problems = validate.problems(doc);
  if (problems.length > 0) throw new AgentError('invalid_desired', `desired state is invalid: ${problems.join('; ')}`);
  const message = doc as DesiredMessage;
  const containers: DesiredMessage['containers'] = {};
  for (const [name, entry] of Object.entries(message.containers)) {
    if (!Object.hasOwn(config.containers, name)) {
      throw new AgentError('unknown_container', `desired state names container "${name}", which this robot's config does not define (defined: ${Object.keys(config.containers).join(', ') || 'none'})`);
    }
    containers[name] = {
      ...(entry.image !== undefined ? { image: allowedReference(entry.image, config.images.allow).familiar } : {}),
      ...(entry.enabled !== undefined ? { enabled: entry.enabled } : {}),
    };
  }
  return { containers, ...(message.version !== undefined ? { version: message.version } : {}) };
}

/** The local specs with the fleet's choices laid over them (pure). */
export function mergeDesired(specs: AgentConfig['containers'], desired: DesiredMessage | null): DesiredContainer[] {
  return Object.entries(specs).map(([name, spec]) => {
    const wish = desired?.containers[name];
    // The config's own image was checked against images.allow when it was loaded.
    const image = wish?.image ?? parseImageReference(spec.image).familiar;
    return {
      name,
      spec,
      image,
      enabled: wish?.enabled ?? spec.enabled,
      source: wish?.image !== undefined || wish?.enabled !== undefined ? 'desired' : 'config',
      specHash: specHash(spec),
    };
  });
}

/** The desired state in force: the fleet's last message, with images pinned by command over it. */
export interface DesiredRecord {
  received: DesiredMessage | null;
  /** Images set by the update and rollback commands, until the fleet says otherwise for that container. */
  pins: Record<string, string>;
}

/** The fleet's message with the pins laid over it (pure). */
export function effectiveDesired(record: DesiredRecord): DesiredMessage | null {
  if (Object.keys(record.pins).length === 0) return record.received;
  const containers = { ...(record.received?.containers ?? {}) };
  for (const [name, image] of Object.entries(record.pins)) containers[name] = { ...containers[name], image };
  return { ...(record.received ?? {}), containers };
}

/**
 * The last accepted desired state and the pins, on disk: a robot that reboots without its
 * broker converges to what the fleet last asked, not back to its config.
 */
export class DesiredStore {
  private readonly file: string;

  constructor(dir: string) {
    this.file = join(dir, 'desired.json');
  }

  load(config: Pick<AgentConfig, 'containers' | 'images'>): DesiredRecord {
    const doc = readJsonFile<{ received?: unknown; pins?: Record<string, string> }>(this.file);
    if (!doc) return { received: null, pins: {} };
    // Checked again: the config may have changed since it was written.
    const received = (() => {
      try {
        return doc.received ? parseDesired(Buffer.from(JSON.stringify(doc.received)), config) : null;
      } catch {
        return null;
      }
    })();
    const pins: Record<string, string> = {};
    for (const [name, image] of Object.entries(doc.pins ?? {})) {
      try {
        if (Object.hasOwn(config.containers, name)) pins[name] = allowedReference(image, config.images.allow).familiar;
      } catch {
        // No longer allowed: dropped.
      }
    }
    return { received, pins };
  }

  async save(record: DesiredRecord): Promise<void> {
    writeJsonFile(this.file, record);
  }
}
