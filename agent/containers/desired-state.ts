import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from '../config/types.js';
import { AgentError } from '../core/errors.js';
import { compileSchema } from '../core/json-schema.js';
import { allowedReference, parseImageReference } from '../core/image-reference.js';
import { packageRoot } from '../core/package-root.js';
import type { DesiredMessage } from '../mqtt/topics.js';
import { readJsonFile, writeJsonFile } from '../state/json-file.js';
import { specHash } from './container-spec.js';
import type { DesiredContainer } from './container-plan.js';

const validate = compileSchema<DesiredMessage>(
  JSON.parse(readFileSync(join(packageRoot(), 'docs', 'schemas', 'desired.json'), 'utf8')) as object,
);

/**
 * Limits on <b>/desired. The message is retained and its version is echoed into the state, and a
 * refusal is echoed into an event and the state: without caps one publisher grows both for good.
 * 32 containers with 255-character images fit in about 10 KiB.
 */
export const DESIRED_LIMITS = {
  /** Bytes of the payload; bigger is refused before it is parsed. */
  maxBytes: 64 * 1024,
  /** Problems named in a refusal; the rest are counted. */
  maxProblems: 5,
  /** Characters of one problem, or of a name, quoted back in a refusal. */
  maxEchoChars: 120,
  /** Characters of a refusal's whole message (it lands in an event and in the state). */
  maxMessageChars: 1024,
} as const;

/**
 * Reads a <b>/desired payload against the robot's own config: the fleet may choose images and
 * switch containers on or off, only for containers defined here and only within images.allow.
 * An empty payload clears the desired state. Any problem rejects the whole message, and what
 * the refusal quotes of the payload is clipped (DESIRED_LIMITS).
 */
export function parseDesired(
  payload: Buffer,
  config: Pick<AgentConfig, 'containers' | 'images'>,
): DesiredMessage | null {
  if (payload.length === 0) return null;
  if (payload.length > DESIRED_LIMITS.maxBytes) {
    const limit = DESIRED_LIMITS.maxBytes;
    throw new AgentError('too_large', `desired state is ${payload.length} bytes; the limit is ${limit}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    const message = clip(`desired state is not JSON: ${(err as Error).message}`, DESIRED_LIMITS.maxMessageChars);
    throw new AgentError('bad_json', message);
  }
  const problems = validate.problems(doc);
  if (problems.length > 0) throw new AgentError('invalid_desired', refusal(problems));
  const message = doc as DesiredMessage;
  const containers: DesiredMessage['containers'] = {};
  for (const [name, entry] of Object.entries(message.containers)) {
    if (!Object.hasOwn(config.containers, name)) {
      const defined = Object.keys(config.containers).join(', ') || 'none';
      const quoted = clip(name, DESIRED_LIMITS.maxEchoChars);
      const message =
        `desired state names container "${quoted}", which this robot's config does not define ` +
        `(defined: ${defined})`;
      throw new AgentError('unknown_container', clip(message, DESIRED_LIMITS.maxMessageChars));
    }
    containers[name] = {
      ...(entry.image !== undefined ? { image: allowedReference(entry.image, config.images.allow).familiar } : {}),
      ...(entry.enabled !== undefined ? { enabled: entry.enabled } : {}),
    };
  }
  return { containers, ...(message.version !== undefined ? { version: message.version } : {}) };
}

/** The first problems, each clipped, and how many more: 100,000 unknown keys make one short line. */
function refusal(problems: string[]): string {
  const named = problems.slice(0, DESIRED_LIMITS.maxProblems).map((p) => clip(p, DESIRED_LIMITS.maxEchoChars));
  const more = problems.length - named.length;
  const rest = more > 0 ? `; and ${more} more problem(s)` : '';
  return clip(`desired state is invalid: ${named.join('; ')}${rest}`, DESIRED_LIMITS.maxMessageChars);
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
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
