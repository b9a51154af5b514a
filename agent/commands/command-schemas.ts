import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../core/errors.js';
import { compileSchema, type SchemaValidator } from '../core/json-schema.js';
import { packageRoot } from '../core/package-root.js';

export interface CommandSchemas {
  request: SchemaValidator<Record<string, unknown>>;
  result: SchemaValidator<unknown>;
}

export function commandSchemaFile(command: string): string {
  return join(packageRoot(), 'docs', 'schemas', 'commands', `${command}.json`);
}

/** A command without a documented schema is a programming error: refuse to start with it. */
export function loadCommandSchemas(command: string): CommandSchemas {
  const file = commandSchemaFile(command);
  let doc: { request?: object; result?: object };
  try {
    doc = JSON.parse(readFileSync(file, 'utf8')) as { request?: object; result?: object };
  } catch (err) {
    throw new AgentError(
      'command_schema_missing',
      `command "${command}" has no readable schema at ${file}: ${(err as Error).message}`,
    );
  }
  if (!doc.request || !doc.result)
    throw new AgentError('command_schema_missing', `${file} must have "request" and "result"`);
  const { request: requestSchema, result: resultSchema } = doc;
  let request: SchemaValidator<Record<string, unknown>> | undefined;
  let result: SchemaValidator<unknown> | undefined;
  return {
    // Compiled when the command first comes: a robot is sent a few of the commands it knows,
    // and each compiled validator is generated code kept for the process's life (issue 14).
    get request() {
      return (request ??= compileSchema(requestSchema));
    },
    // Only tests check results: compiled when first asked, not at every start on the robot.
    get result() {
      return (result ??= compileSchema(resultSchema));
    },
  };
}
