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
  /** Values never to print (passwords), replaced by "***" wherever they appear. */
  secrets?: readonly string[];
}

export function createLogger(options: LoggerOptions, module = 'agent'): Logger {
  const write = options.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const threshold = LEVELS[options.level];
  const secrets = (options.secrets ?? []).filter((s) => s.length > 0);

  const redact = (text: string): string => secrets.reduce((acc, s) => acc.split(s).join('***'), text);

  const log = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (LEVELS[level] < threshold) return;
    const entry: Record<string, unknown> = { ts: new Date().toISOString(), level, module, msg };
    // A field named like one of the logger's own keys is kept aside, so it can never disguise
    // which module wrote the line.
    for (const [key, value] of Object.entries(serializable(fields) ?? {})) entry[key in entry ? `field_${key}` : key] = value;
    let line: string;
    try {
      line = JSON.stringify(entry);
    } catch {
      line = JSON.stringify({ ts: entry.ts, level, module, msg });
    }
    write(redact(line));
  };

  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    child: (name) => createLogger(options, name),
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
