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
  const ajv = new Ajv({ allErrors: true, useDefaults: options.useDefaults ?? false, strict: false });
  addFormats(ajv);
  const validate: ValidateFunction = ajv.compile(schema);
  const check = ((value: unknown) => validate(value)) as SchemaValidator<T>;
  check.problems = (value: unknown) => (validate(value) ? [] : (validate.errors ?? []).map(formatProblem));
  return check;
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
  const allowed = error.keyword === 'enum' ? ` (${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')})` : '';
  return `${where}: ${error.message ?? 'is invalid'}${allowed}`;
}

function unescapePointer(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}
