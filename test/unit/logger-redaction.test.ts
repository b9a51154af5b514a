import assert from 'node:assert/strict';
import { createLogger, SecretSet } from '../../agent/core/logger.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { knownSecrets } from '../../agent/config/known-secrets.js';
import { loadConfig } from '../../agent/config/load-config.js';
import { hasUserinfo, urlForPrinting } from '../../agent/config/url-credentials.js';
import { tempDir, writeYaml } from '../helpers/temp.js';

/** A password as an operator may choose one: quotes, backslashes and URL delimiters in it. */
const SECRET = 'pa"ss\\wo:rd@/%x';
const USER = 'fleet';

/** Every form the secret could take in a line: as is, JSON-escaped (once, twice), URL-encoded, Docker auth. */
function forms(secret: string, user = USER): string[] {
  const once = JSON.stringify(secret).slice(1, -1);
  return [
    secret,
    once,
    JSON.stringify(once).slice(1, -1),
    encodeURIComponent(secret),
    Buffer.from(`${user}:${secret}`).toString('base64'),
  ];
}

function collect(secrets: readonly string[] | SecretSet): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level: 'debug', write: (l) => lines.push(l), secrets }) };
}

function assertClean(lines: string[], secret = SECRET): void {
  for (const line of lines) {
    for (const form of forms(secret)) assert.ok(!line.includes(form), `${JSON.stringify(form)} printed in ${line}`);
  }
}

describe('logger: secrets are redacted before JSON escaping (issue 12.7)', () => {
  it('a secret holding " and \\ never reaches the line, in msg, fields, nested values, keys or errors', () => {
    const { lines, logger } = collect([SECRET]);
    logger.info(`connecting with ${SECRET}`, {
      password: SECRET,
      nested: { deeper: [`x${SECRET}y`, { [SECRET]: 1 }] },
      error: new Error(`refused: ${SECRET}`),
    });
    assert.equal(lines.length, 1);
    assertClean(lines);
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(entry.msg, 'connecting with ***');
    assert.equal(entry.password, '***');
    assert.deepEqual(entry.nested, { deeper: ['x***y', { '***': 1 }] });
    assert.deepEqual(entry.error, { message: 'refused: ***' });
  });

  it('a field that already holds JSON text (the escaped form) is redacted too', () => {
    const { lines, logger } = collect([SECRET]);
    logger.warn('answer', { body: JSON.stringify({ password: SECRET }) });
    assertClean(lines);
    assert.match(lines[0]!, /\*\*\*/);
  });

  it('the URL-encoded form (a password in a URL) and base64 of user:password (Docker auth) are redacted', () => {
    const set = new SecretSet();
    set.addCredentials(USER, SECRET);
    const { lines, logger } = collect(set);
    const auth = Buffer.from(`${USER}:${SECRET}`).toString('base64');
    const url = `mqtt://${USER}:${encodeURIComponent(SECRET)}@host`;
    logger.error('pull failed', { url, header: `Basic ${auth}`, auths: { 'docker.io': { auth } } });
    assertClean(lines);
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(entry.header, 'Basic ***');
  });

  it('a secret added after the logger exists (the embedded password, made at start) reaches every child', () => {
    const set = new SecretSet();
    const { lines, logger } = collect(set);
    const child = logger.child('mqtt');
    child.info('before', { p: SECRET });
    // Not yet known: printed (else this test would prove nothing).
    assert.ok(lines[0]!.includes(JSON.stringify(SECRET).slice(1, -1)));
    set.add(SECRET);
    child.info('after', { p: SECRET });
    logger.child('other').info(SECRET);
    assertClean(lines.slice(1));
    assert.equal((JSON.parse(lines[1]!) as Record<string, unknown>).p, '***');
  });

  it('the longest form goes first, so no part of a longer secret survives a shorter one', () => {
    const { lines, logger } = collect(['abc', 'abcdef']);
    logger.info('x', { v: 'abcdef' });
    assert.equal((JSON.parse(lines[0]!) as Record<string, unknown>).v, '***');
  });

  it('cycles and dates still print; a field named like a logger key is kept aside', () => {
    const { lines, logger } = collect([SECRET]);
    const cyclic: Record<string, unknown> = { a: SECRET };
    cyclic.self = cyclic;
    const at = new Date('2026-12-06T10:00:00Z');
    logger.info('m', { cyclic, at, msg: SECRET });
    assertClean(lines);
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.deepEqual(entry.cyclic, { a: '***', self: '[cycle]' });
    assert.equal(entry.at, at.toISOString());
    assert.equal(entry.field_msg, '***');
  });
});

describe('URLs with credentials (issue 12.7)', () => {
  it('finds a user or password in any scheme, and prints the URL without them', () => {
    for (const url of ['mqtt://u:p@h:1883', 'mqtts://u@h', 'https://:p@mirror.lab/', 'ws://u:p@h/mqtt']) {
      assert.equal(hasUserinfo(url), true, url);
      assert.ok(!urlForPrinting(url).includes('p@') && !urlForPrinting(url).includes('u:'), urlForPrinting(url));
      assert.match(urlForPrinting(url), /\*\*\*@/);
    }
    for (const url of ['mqtt://h:1883', 'https://mirror.lab/', 'mqtt://h/a@b']) {
      assert.equal(hasUserinfo(url), false, url);
    }
    assert.equal(urlForPrinting('mqtt://h:1883'), 'mqtt://h:1883');
  });
});

describe('the secrets the agent knows (issue 12.7)', () => {
  it('every password of the config, Docker config credentials and the embedded one made at start', () => {
    const dir = tempDir('rfa-known-');
    const file = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const auth = Buffer.from('bob:d"ock\\er').toString('base64');
    const dockerConfig = file('config.json', JSON.stringify({ auths: { 'lab:5000': { auth } } }));
    const loaded = loadConfig({
      file: writeYaml(dir, 'c.yaml', {
        mqtt: { url: 'mqtts://broker:8883', username: 'rosmaster', passwordFile: file('mqtt', 'mq"tt\\pw\n') },
        images: { dockerConfig },
        registries: { 'reg:5000': { username: 'ann', passwordFile: file('reg', 're"g\\pw') } },
      }),
      env: {},
    });
    // main.ts makes the embedded password before the logger when the config has none.
    loaded.secrets.embeddedPassword = 'made-at-start';
    const set = knownSecrets(loaded);
    const text = JSON.stringify({ a: 'mq"tt\\pw', b: 're"g\\pw', c: 'd"ock\\er', d: 'made-at-start' });
    assert.equal(set.redact(text), JSON.stringify({ a: '***', b: '***', c: '***', d: '***' }));
    assert.equal(set.redact(`Basic ${auth}`), 'Basic ***');
  });
});
