import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../agent/core/package-root.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig } from '../setup.js';
import { rssOf, useSpawnedAgent } from './agent-on-rig.js';

/** Every documented command with its request properties. */
function commands(): Array<{ name: string; properties: Record<string, { type?: string | string[] }> }> {
  const dir = join(packageRoot(), 'docs', 'schemas', 'commands');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => {
      type Doc = { request: { properties?: Record<string, { type?: string | string[] }> } };
      const doc = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Doc;
      return { name: f.replace(/\.json$/, ''), properties: doc.request.properties ?? {} };
    });
}

/** A value of the wrong type for a property of this schema type. */
function wrongTypeFor(type: string | string[] | undefined): unknown {
  const types = Array.isArray(type) ? type : [type];
  return types.includes('string') ? 12345 : 'not-this-type';
}

describe('envelope fuzzing of every command, with bounded RSS', function () {
  this.timeout(60_000);
  const spawned = useSpawnedAgent();

  it('every registered command answers malformed envelopes with the right code; the agent lives and its RSS stays bounded', async function () {
    const rig = needRig(this);
    const { agent, probe, base: b, pid } = await spawned.start(rig, 'fuzz');
    const rssBefore = rssOf(pid);

    const all = commands();
    assert.ok(all.length >= 20, `${all.length} commands documented`);
    let sent = 0;
    for (const { name, properties } of all) {
      const id = (what: string) => `${name}-${what}`;
      const wrongTypes: Record<string, unknown> = { id: id('types') };
      for (const [key, schema] of Object.entries(properties)) wrongTypes[key] = wrongTypeFor(schema.type);
      if (Object.keys(properties).length === 0) wrongTypes.force = true;
      const cases: Array<[string, string | Buffer, string[]]> = [
        ['not JSON', '{"id": ', ['bad_json']],
        ['empty', '', ['bad_json']],
        ['binary', Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x7b]), ['bad_json']],
        ['an array', '[1,2,3]', ['bad_request']],
        ['a string', '"hello"', ['bad_request']],
        ['a number', '42', ['bad_request']],
        ['null', 'null', ['bad_request']],
        ['no id', '{"image":"x"}', ['bad_request']],
        ['a numeric id', '{"id":7}', ['bad_request']],
        ['an empty id', '{"id":""}', ['bad_request']],
        ['a huge id', JSON.stringify({ id: 'i'.repeat(100_000) }), ['bad_request']],
        ['wrong types', JSON.stringify(wrongTypes), ['invalid_args']],
        ['an unknown key', JSON.stringify({ id: id('unknown'), __proto__x: 1, constructor: 'x' }), ['invalid_args']],
        ['a huge unknown key', JSON.stringify({ id: id('hugekey'), ['k'.repeat(150_000)]: 1 }), ['invalid_args']],
        ['a huge string', JSON.stringify({ id: id('hugestring'), junk: 'a'.repeat(200_000) }), ['invalid_args']],
        [
          'deep nesting',
          `{"id":"${id('deep')}","junk":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
          ['invalid_args', 'bad_json'],
        ],
        ['over the size limit', Buffer.alloc(256 * 1024 + 1, 0x20), ['too_large']],
      ];
      const topic = `${b}/response/${name}`;
      for (const [what, payload, codes] of cases) {
        const before = probe.messagesOn(topic).length;
        await probe.client.publishAsync(`${b}/request/${name}`, payload, { qos: 1 });
        sent += 1;
        const reply = await waitUntil(() => probe!.messagesOn(topic)[before], 5000, `${name}: the answer to ${what}`);
        const body = JSON.parse(reply.text) as { ok: boolean; error?: { code: string; message: string } };
        assert.equal(body.ok, false, `${name} ${what}`);
        const { code, message } = body.error!;
        assert.ok(codes.includes(code), `${name} ${what}: ${code} ${message.slice(0, 200)}`);
        assert.ok(reply.payload.length < 8192, `${name} ${what}: a ${reply.payload.length}-byte answer`);
      }
    }
    // Over the 1 MiB the agent told the broker it takes: dropped by the broker, never delivered.
    await probe.client.publishAsync(`${b}/request/ping`, Buffer.alloc(2 * 1024 * 1024, 0x20), { qos: 1 });
    assert.equal((await probe.request(b, 'ping', { id: 'after-fuzz' })).ok, true, 'alive after the fuzzing');
    assert.equal(agent.child.exitCode, null);
    const rssAfter = rssOf(pid);
    const grown = (rssAfter - rssBefore) / 1024 / 1024;
    assert.ok(grown < 64, `RSS grew ${grown.toFixed(1)} MiB over ${sent} malformed requests`);
  });
});
