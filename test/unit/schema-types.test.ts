import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../../agent/core/package-root.js';
import { tempDir } from '../helpers/temp.js';

/** scripts/schema-types.mjs, the generator of command-map.ts and documented-events.ts. */
interface Generator {
  generated(root?: string): Promise<Array<{ file: string; text: string }>>;
  commandMapSource(root?: string): Promise<string>;
  documentedEventsSource(root?: string): Promise<string>;
}

const generator = async (): Promise<Generator> =>
  (await import(pathToFileURL(join(packageRoot(), 'scripts', 'schema-types.mjs')).href)) as Generator;

/** A copy of docs/schemas to edit, as the generator's root. */
function schemasCopy(): string {
  const root = tempDir('rfa-schemas-');
  cpSync(join(packageRoot(), 'docs', 'schemas'), join(root, 'docs', 'schemas'), { recursive: true });
  return root;
}

/** The parts of a command schema or event.json these tests edit. */
interface SchemaDoc {
  result: { properties: Record<string, object>; required: string[] };
  allOf: Array<{ then: { properties: Record<string, object> } }>;
}

function editJson(file: string, edit: (doc: SchemaDoc) => void): void {
  const doc = JSON.parse(readFileSync(file, 'utf8')) as SchemaDoc;
  edit(doc);
  writeFileSync(file, JSON.stringify(doc, null, 2));
}

describe('types generated from docs/schemas (issue 13.3)', function () {
  // Loading prettier the first time takes a moment on a busy machine.
  this.timeout(60_000);

  it('the checked-in command map and event types are what the schemas give now', async () => {
    for (const { file, text } of await (await generator()).generated()) {
      assert.equal(readFileSync(file, 'utf8'), text, `${file} is stale: run node scripts/schema-types.mjs`);
    }
  });

  it('a schema change changes the generated types (so a stale file cannot pass the check above)', async () => {
    const g = await generator();
    const root = schemasCopy();
    const before = await g.commandMapSource(root);
    editJson(join(root, 'docs', 'schemas', 'commands', 'ping.json'), (doc) => {
      doc.result.properties.uptime = { type: 'integer' };
      doc.result.required.push('uptime');
    });
    const after = await g.commandMapSource(root);
    assert.notEqual(after, before);
    assert.match(after, /uptime: number;/);

    const events = await g.documentedEventsSource(root);
    editJson(join(root, 'docs', 'schemas', 'event.json'), (doc) => {
      doc.allOf[0]!.then.properties.version = { type: 'integer' };
    });
    assert.notEqual(await g.documentedEventsSource(root), events);
  });

  it('refuses a keyword it does not understand instead of typing it as unknown', async () => {
    const g = await generator();
    const root = schemasCopy();
    editJson(join(root, 'docs', 'schemas', 'commands', 'ping.json'), (doc) => {
      doc.result.properties.ts = { oneOf: [{ type: 'string' }, { type: 'integer' }] };
    });
    await assert.rejects(g.commandMapSource(root), /commands\/ping\.json\.result\.ts: keyword "oneOf"/);
  });
});
