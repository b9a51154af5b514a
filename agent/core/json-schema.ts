import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS with a `default` property; under NodeNext its import is the module object.
const addFormats = (addFormatsModule as unknown as { default: (ajv: Ajv) => Ajv }).default;

export interface SchemaValidator<T> {
  (value: unknown): value is T;
  /** One line per problem, each starting with the dotted path of the value at fault. */
  problems(value: unknown): string[];
}

/**
 * Compiles a JSON Schema (draft-07) into a validator whose problems read as
 * `mqtt.heartbeat: must be >= 5`, the form check-config prints and error messages carry.
 */
export function compileSchema<T>(schema: object, options: { useDefaults?: boolean } = {}): SchemaValidator<T> {
  const validate: ValidateFunction = ajvFor(options.useDefaults ?? false).compile(schema);
  const check = ((value: unknown) => validate(value)) as SchemaValidator<T>;
  check.problems = (value: unknown) => (validate(value) ? [] : (validate.errors ?? []).map(formatProblem));
  return check;
}

/**
 * One Ajv for the whole process: each instance compiles the draft-07 meta-schema and the
 * formats again, about 0.5 MiB of RSS apiece, and the agent compiles dozens of schemas.
 * Schemas are compiled by content, so sharing an instance changes nothing they validate.
 * An instance keeps everything it compiled (its code shares one scope of values), so the one
 * with useDefaults, which serves only the configuration, once at start, is not kept: with it
 * goes the config's validator, ~1 MiB of generated code (issue 14).
 */
let shared: Ajv | undefined;

function ajvFor(useDefaults: boolean): Ajv {
  if (useDefaults) return newAjv(true);
  return (shared ??= newAjv(false));
}

function newAjv(useDefaults: boolean): Ajv {
  const ajv = new Ajv({ allErrors: true, useDefaults, strict: false, addUsedSchema: false });
  addFormats(ajv);
  return ajv;
}

export function formatProblem(error: ErrorObject): string {
  const path = error.instancePath.split('/').slice(1).map(unescapePointer);
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'additionalProperties') {
    return `${[...path, String(params.additionalProperty)].join('.')}: unknown key`;
  }
  if (error.keyword === 'required') {
    return `${[...path, String(params.missingProperty)].join('.')}: is required`;
  }
  // A key that breaks propertyNames is named in the path, where the operator will look for it.
  const key = (error as ErrorObject & { propertyName?: string }).propertyName;
  if (key !== undefined) path.push(key);
  if (error.keyword === 'propertyNames') return `${path.join('.')}: is not an allowed name`;
  const where = path.length > 0 ? path.join('.') : '(top level)';
  const allowed =
    error.keyword === 'enum'
      ? ` (${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')})`
      : '';
  return `${where}: ${error.message ?? 'is invalid'}${allowed}`;
}

function unescapePointer(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}
