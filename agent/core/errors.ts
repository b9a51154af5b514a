/**
 * Every failure the agent reports carries a stable machine code (for dashboards and scripts)
 * and a sentence an operator standing next to the robot can act on.
 */
export class AgentError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.code = code;
    this.details = options.details;
  }
}

export interface ErrorInfo {
  code: string;
  message: string;
}

/** Any thrown value as {code, message}; foreign errors keep their errno code when they have one. */
export function toErrorInfo(err: unknown, fallbackCode = 'internal'): ErrorInfo {
  if (err instanceof AgentError) return { code: err.code, message: err.message };
  if (err instanceof Error) {
    const errno = (err as NodeJS.ErrnoException).code;
    return { code: typeof errno === 'string' ? errno.toLowerCase() : fallbackCode, message: err.message };
  }
  return { code: fallbackCode, message: String(err) };
}
