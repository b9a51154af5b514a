/**
 * One JSON object per line on stdout: journald keeps them, `jq` reads them, and no secret
 * registered with the logger ever reaches the journal.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(module: string): Logger;
}

export interface LoggerOptions {
  level: LogLevel;
  /** Where lines go; stdout by default. Tests pass a collector. */
  write?: (line: string) => void;
  /**
   * Values never to print (passwords), replaced by "***" wherever they appear. A SecretSet can
   * still grow after the logger exists (a password made at start); an array is fixed.
   */
  secrets?: readonly string[] | SecretSet;
}

/**
 * The secrets a process knows, in every form they could be printed in: as they are, JSON-escaped
 * (a secret holding `"` or `\` is written `\"`, `\\` in a log line), URL-encoded, and for a
 * user and password the base64 of `user:password` (Docker auth, HTTP basic).
 */
export class SecretSet {
  private forms: string[] = [];

  constructor(secrets: readonly (string | undefined)[] = []) {
    for (const secret of secrets) this.add(secret);
  }

  add(secret: string | undefined): void {
    if (secret === undefined || secret === '') return;
    this.addForms([secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret)]);
  }

  /** The password, and `user:password` as Docker's config.json and HTTP basic auth encode it. */
  addCredentials(username: string, password: string | undefined): void {
    if (password === undefined || password === '') return;
    this.add(password);
    const pair = Buffer.from(`${username}:${password}`, 'utf8');
    this.addForms([pair.toString('base64'), pair.toString('base64url')]);
  }

  get size(): number {
    return this.forms.length;
  }

  /** text with every known form replaced by "***"; the longest first, so no part of one survives. */
  redact(text: string): string {
    let out = text;
    for (const form of this.forms) if (out.includes(form)) out = out.split(form).join('***');
    return out;
  }

  /** The same for every string (values and keys) inside a value, before it is serialised. */
  redactValue(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
    if (typeof value === 'string') return this.redact(value);
    if (value === null || typeof value !== 'object') return value;
    if (depth > 32) return '[too deep]';
    if (seen.has(value)) return '[cycle]';
    seen.add(value);
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return this.redactValue(toJSON.call(value), depth + 1, seen);
    if (Array.isArray(value)) return value.map((v) => this.redactValue(v, depth + 1, seen));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[this.redact(k)] = this.redactValue(v, depth + 1, seen);
    return out;
  }

  private addForms(forms: string[]): void {
    const all = new Set([...this.forms, ...forms.filter((f) => f !== '')]);
    this.forms = [...all].sort((a, b) => b.length - a.length);
  }
}

export function createLogger(options: LoggerOptions, module = 'agent'): Logger {
  const write = options.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const threshold = LEVELS[options.level];
  // One set for a logger and all its children, so a secret added later reaches every module.
  const secrets = options.secrets instanceof SecretSet ? options.secrets : new SecretSet(options.secrets ?? []);
  const shared: LoggerOptions = { ...options, secrets };

  const log = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (LEVELS[level] < threshold) return;
    const entry: Record<string, unknown> = { ts: new Date().toISOString(), level, module, msg: secrets.redact(msg) };
    // Values are redacted before JSON escaping: after it, a secret holding `"` or `\` no longer
    // matches its escaped form and would be printed in clear.
    const redacted = secrets.redactValue(serializable(fields) ?? {}) as Record<string, unknown>;
    // A field named like one of the logger's own keys is kept aside, so it can never disguise
    // which module wrote the line.
    for (const [key, value] of Object.entries(redacted)) entry[key in entry ? `field_${key}` : key] = value;
    let line: string;
    try {
      line = JSON.stringify(entry);
    } catch {
      line = JSON.stringify({ ts: entry.ts, level, module, msg: entry.msg });
    }
    // And once more on the line: a field that already held JSON text carries the escaped form.
    write(secrets.redact(line));
  };

  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    child: (name) => createLogger(shared, name),
  };
}

/** Errors do not JSON.stringify; turn them into {code, message}. */
function serializable(fields?: Record<string, unknown>): Record<string, unknown> | undefined {
  if (!fields) return undefined;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value instanceof Error) {
      const code = (value as { code?: unknown }).code;
      out[key] = { code: typeof code === 'string' ? code : undefined, message: value.message };
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** A logger that drops everything; for modules built in tests that do not care. */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};
