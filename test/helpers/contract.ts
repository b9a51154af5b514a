import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { formatProblem } from '../../agent/core/json-schema.js';
import { packageRoot } from '../../agent/core/package-root.js';

const addFormats = (addFormatsModule as unknown as { default: (ajv: Ajv) => Ajv }).default;

/**
 * The documented MQTT contract (docs/schemas) as validators, so tests check what the agent
 * really sends against what docs/mqtt-api.md promises.
 */
export class Contract {
  private readonly ajv: Ajv;

  constructor() {
    this.ajv = new Ajv({ allErrors: true, strict: false });
    addFormats(this.ajv);
    const dir = join(packageRoot(), 'docs', 'schemas');
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
      this.ajv.addSchema(JSON.parse(readFileSync(join(dir, file), 'utf8')) as object, file);
    }
  }

  /** Problems of value against docs/schemas/<name> (e.g. "state.json"); empty when it conforms. */
  problems(name: string, value: unknown): string[] {
    const validate = this.ajv.getSchema(name);
    if (!validate) throw new Error(`no schema ${name} in docs/schemas`);
    return validate(value) ? [] : (validate.errors ?? []).map(formatProblem);
  }

  commandResultProblems(command: string, result: unknown): string[] {
    const doc = JSON.parse(
      readFileSync(join(packageRoot(), 'docs', 'schemas', 'commands', `${command}.json`), 'utf8'),
    ) as { result: object };
    const validate = this.ajv.compile(doc.result);
    return validate(result) ? [] : (validate.errors ?? []).map(formatProblem);
  }

  /** Throws with every problem listed, so a failing test says what part of the contract broke. */
  assert(name: string, value: unknown): void {
    const problems = this.problems(name, value);
    if (problems.length > 0)
      throw new Error(`${name} violated:\n  ${problems.join('\n  ')}\nvalue: ${JSON.stringify(value).slice(0, 2000)}`);
  }
}
