import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../agent/core/package-root.js';

/** The event types a map file declares (its `'a.b': ...` keys). */
function declaredTypes(file: string): string[] {
  const source = readFileSync(join(packageRoot(), 'agent', 'state', file), 'utf8');
  return [...source.matchAll(/^ {2}'([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+)':/gm)].map((m) => m[1]!);
}

describe('the event map and the docs (issue 13.3)', () => {
  it('every event type the agent can raise is named in docs/ (mqtt-api.md#events or a topic page)', () => {
    const types = [...declaredTypes('documented-events.ts'), ...declaredTypes('events.ts')];
    assert.ok(types.length >= 40, `only ${types.length} event types found: did the map's layout change?`);
    const docs = join(packageRoot(), 'docs');
    const text = readdirSync(docs)
      .filter((f) => f.endsWith('.md'))
      .map((f) => readFileSync(join(docs, f), 'utf8'))
      .join('\n');
    const missing = types.filter((t) => !text.includes(`\`${t}\``) && !text.includes(`\`${t} `));
    assert.deepEqual(missing, [], 'event types no page of docs/ names');
  });
});
