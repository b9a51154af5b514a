import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineCommand } from '../../agent/commands/command.js';
import { CommandRouter } from '../../agent/commands/command-router.js';
import { AgentError } from '../../agent/core/errors.js';
import { silentLogger } from '../../agent/core/logger.js';
import { signMessage, signRequest, type SigningKey } from '../../agent/fleet/request-signer.js';
import type { MqttLink, OutboundMessage } from '../../agent/mqtt/mqtt-link.js';
import { buildTopics, type CommandResponse } from '../../agent/mqtt/topics.js';
import { canonicalJson, messageHash } from '../../agent/security/canonical-json.js';
import { CommandSigning, signingPolicy } from '../../agent/security/command-signing.js';
import { CommandVerifier, MAX_TOKEN_CHARS } from '../../agent/security/command-verifier.js';
import { DESIRED_SIGNATURE_FILE, DesiredSignature } from '../../agent/security/desired-signature.js';
import { REPLAY_FILE, ReplayStore } from '../../agent/security/replay-store.js';
import { reasonOf } from '../../agent/security/unauthorized.js';
import { EventBus } from '../../agent/state/event-bus.js';
import { tempDir } from '../helpers/temp.js';

/** Signed commands without a broker: the verifier, the replay store and the router, on an injected clock. */
const ROBOT = 'r1';
const T0 = 1_800_000_000; // seconds: every clock below is T0 plus something
const SKEW = 30;

function pair(kid: string): { signing: SigningKey; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { signing: { key: privateKey, kid }, publicKey };
}

const k1 = pair('k1');
const k2 = pair('k2');
const stranger = pair('k1'); // the same id, another key

function verifier(nowSeconds: number, keys: Array<[string, KeyObject]> = [['k1', k1.publicKey]]): CommandVerifier {
  return new CommandVerifier({
    robotId: ROBOT,
    keys: new Map(keys),
    clockSkewSeconds: SKEW,
    now: () => nowSeconds * 1000,
  });
}

const message = { id: 'req-1', file: 'a.tar' };

async function token(over: Partial<Parameters<typeof signRequest>[0]> = {}): Promise<string> {
  const base = { key: k1.signing, robot: ROBOT, command: 'files.remove', message, issuedAt: T0, lifetimeSeconds: 60 };
  return signRequest({ ...base, ...over });
}

async function reason(promise: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    assert.ok(err instanceof AgentError, `not an AgentError: ${String(err)}`);
    assert.equal(err.code, 'unauthorized');
    assert.ok(err.message.length < 400, `a long refusal: ${err.message}`);
    return reasonOf(err);
  }
  return 'accepted';
}

const expect = { command: 'files.remove', hash: messageHash(message), maxLifetimeSeconds: 120 };

describe('signed commands: canonical JSON and the args hash', () => {
  it('sorts keys at every level and leaves arrays in order; the signature field is not hashed', () => {
    const canonical = canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 'é' }], c: null } });
    assert.equal(canonical, '{"a":{"c":null,"d":[2,{"y":"é","z":1}]},"b":1}');
    assert.equal(messageHash({ a: 1, b: 2 }), messageHash({ b: 2, a: 1, signature: 'x' }));
    assert.notEqual(messageHash({ a: 1 }), messageHash({ a: '1' }));
  });

  it('refuses nesting deeper than 64 levels instead of overflowing the stack', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i += 1) deep = [deep];
    assert.throws(() => canonicalJson(deep), /deeper than 64/);
  });

  it('a number out of range (1e400 parses to Infinity) does not hash as the null it would be written as', () => {
    const signed = JSON.parse('{"id":"r1","tail":null}') as Record<string, unknown>;
    const swapped = JSON.parse('{"id":"r1","tail":1e400}') as Record<string, unknown>;
    assert.equal(swapped.tail, Infinity);
    assert.throws(() => messageHash(swapped), /out of range/);
    assert.throws(() => canonicalJson([-Infinity]), /out of range/);
    assert.equal(canonicalJson(signed), '{"id":"r1","tail":null}');
  });
});

describe('signed commands: the verifier (injected clock)', () => {
  it('accepts a right signature and returns its claims', async () => {
    const claims = await verifier(T0 + 1).verify(await token({ jti: 'j1' }), expect);
    const want = { aud: ROBOT, cmd: 'files.remove', args: expect.hash, iat: T0, exp: T0 + 60, jti: 'j1', kid: 'k1' };
    assert.deepEqual({ ...claims }, want);
    verifier(T0 + 1).checkTime(claims);
  });

  it('each wrong variant has its own reason', async () => {
    const v = verifier(T0);
    assert.equal(await reason(v.verify(undefined, expect)), 'unsigned');
    assert.equal(await reason(v.verify(42, expect)), 'bad_token');
    assert.equal(await reason(v.verify('not.a.jws', expect)), 'bad_token');
    assert.equal(await reason(v.verify('x'.repeat(MAX_TOKEN_CHARS + 1), expect)), 'token_too_large');
    assert.equal(await reason(v.verify(await token({ robot: 'r2' }), expect)), 'wrong_robot');
    assert.equal(await reason(v.verify(await token({ command: 'ping' }), expect)), 'wrong_command');
    assert.equal(
      await reason(v.verify(await token({ message: { ...message, file: 'b.tar' } }), expect)),
      'wrong_arguments',
    );
    assert.equal(
      await reason(v.verify(await token({ message: { ...message, id: 'req-2' } }), expect)),
      'wrong_arguments',
    );
    assert.equal(await reason(v.verify(await token({ key: k2.signing }), expect)), 'unknown_key');
    assert.equal(await reason(v.verify(await token({ key: stranger.signing }), expect)), 'bad_signature');
    assert.equal(await reason(v.verify(await token({ lifetimeSeconds: 121 }), expect)), 'lifetime_too_long');
    // Claims altered after signing: the signature no longer covers them.
    const [h, p, s] = (await token()).split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, aud: ROBOT, exp: T0 + 3600 })).toString('base64url');
    assert.equal(await reason(v.verify(`${h}.${forged}.${s}`, expect)), 'bad_signature');
    // alg "none" and HS256 are not EdDSA.
    const none = `${Buffer.from('{"alg":"none","kid":"k1"}').toString('base64url')}.${p}.`;
    assert.equal(await reason(v.verify(none, expect)), 'bad_token');
  });

  it('tolerates the configured skew on both sides, and no more', async () => {
    const t = await token(); // iat T0, exp T0 + 60
    const claims = await verifier(T0).verify(t, expect);
    const at = (seconds: number) => reason(() => verifier(seconds).checkTime(claims));
    assert.equal(await at(T0 - SKEW), 'accepted', 'signed by a clock 30 s ahead');
    assert.equal(await at(T0 - SKEW - 1), 'not_yet_valid');
    assert.equal(await at(T0 + 60 + SKEW), 'accepted', 'checked by a clock 30 s ahead');
    assert.equal(await at(T0 + 60 + SKEW + 1), 'expired');
  });

  it('verifies under either key while a key is rotated', async () => {
    const v = verifier(T0, [
      ['k1', k1.publicKey],
      ['k2', k2.publicKey],
    ]);
    await v.verify(await token(), expect);
    await v.verify(await token({ key: k2.signing }), expect);
  });
});

describe('signed commands: the replay store', () => {
  it('refuses a jti seen before, also from a new store on the same directory (a restart)', async () => {
    const dir = tempDir();
    let now = T0 * 1000;
    const store = new ReplayStore({ dir, clockSkewSeconds: SKEW, now: () => now });
    store.claim('j1', { iat: T0, exp: T0 + 60 });
    assert.equal(await reason(() => store.claim('j1', { iat: T0, exp: T0 + 60 })), 'replayed');
    const restarted = new ReplayStore({ dir, clockSkewSeconds: SKEW, now: () => now });
    await restarted.start();
    assert.equal(await reason(() => restarted.claim('j1', { iat: T0, exp: T0 + 60 })), 'replayed');
    // Forgotten only once it expired (plus the skew): by then the verifier refuses it as expired.
    now = (T0 + 60 + SKEW + 1) * 1000;
    restarted.claim('j2', { iat: T0 + 90, exp: T0 + 150 });
    assert.equal(restarted.size, 1);
  });

  it('is bounded: full, it refuses with replay_store_full and forgets nothing', async () => {
    const store = new ReplayStore({ dir: tempDir(), clockSkewSeconds: SKEW, now: () => T0 * 1000, max: 3 });
    for (const jti of ['a', 'b', 'c']) store.claim(jti, { iat: T0, exp: T0 + 60 });
    assert.equal(await reason(() => store.claim('d', { iat: T0, exp: T0 + 60 })), 'replay_store_full');
    assert.equal(await reason(() => store.claim('a', { iat: T0, exp: T0 + 60 })), 'replayed');
  });

  it('a file there but unreadable: nothing signed before the start is accepted', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, REPLAY_FILE), '{not json');
    const store = new ReplayStore({ dir, clockSkewSeconds: SKEW, now: () => T0 * 1000 });
    await store.start();
    assert.equal(await reason(() => store.claim('old', { iat: T0 - 5, exp: T0 + 55 })), 'replayed');
    store.claim('new', { iat: T0 + SKEW + 1, exp: T0 + 90 });
  });
});

describe('signed commands: the default policy', () => {
  type Commands = { keys?: Array<{ id: string; publicKeyFile: string }>; required?: boolean };
  const defaults = { keys: [], clockSkewSeconds: 30, maxLifetimeSeconds: 120, desiredMaxLifetimeSeconds: 604800 };
  const config = (mqtt: { url?: string }, commands: Commands) =>
    ({ mqtt, security: { commands: { ...defaults, ...commands } } }) as never;
  const key = [{ id: 'k1', publicKeyFile: '/k1.pub' }];

  it('keys make signatures required; no keys on the embedded broker take unsigned commands quietly', () => {
    assert.deepEqual(signingPolicy(config({}, { keys: key })), { required: true, keys: ['k1'] });
    assert.deepEqual(signingPolicy(config({ url: 'mqtts://b' }, { keys: key })), { required: true, keys: ['k1'] });
    assert.deepEqual(signingPolicy(config({}, {})), { required: false, keys: [] });
  });

  it('a fleet broker taking unsigned commands says so', () => {
    assert.match(signingPolicy(config({ url: 'mqtts://b' }, {})).warning ?? '', /not signed.*security\.commands\.keys/);
    assert.match(
      signingPolicy(config({ url: 'mqtts://b' }, { keys: key, required: false })).warning ?? '',
      /required is false/,
    );
  });
});

class RecordingLink {
  readonly sent: OutboundMessage[] = [];
  send(m: OutboundMessage): void {
    this.sent.push(m);
  }
  onMessage(): () => void {
    return () => undefined;
  }
}

describe('signed commands: the router', () => {
  function signedRouter(now: () => number, required = true) {
    let runs = 0;
    const replay = new ReplayStore({ dir: tempDir(), clockSkewSeconds: SKEW, now });
    const signing = new CommandSigning({
      policy: { required, keys: ['k1'] },
      keys: new Map([['k1', k1.publicKey]]),
      robotId: ROBOT,
      clockSkewSeconds: SKEW,
      maxLifetimeSeconds: 120,
      replay,
      now,
    });
    const router = new CommandRouter({
      link: new RecordingLink() as unknown as MqttLink,
      topics: buildTopics('fleet', ROBOT),
      bus: new EventBus(),
      logger: silentLogger,
      signing,
      commands: [
        defineCommand({
          name: 'files.remove',
          run: async ({ file }) => ({ file, bytes: ++runs }),
        }),
      ],
    });
    return { router, runs: () => runs };
  }
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  const errorOf = (r: CommandResponse | undefined) => (r && !r.ok ? r.error : undefined);

  it('runs a signed request once; a redelivery gets the same answer, its signature under another id does not fit', async () => {
    const { router, runs } = signedRouter(() => T0 * 1000);
    const signed = await signMessage({ key: k1.signing, robot: ROBOT, command: 'files.remove', message, issuedAt: T0 });
    const first = await router.handle('files.remove', json(signed));
    assert.deepEqual(first, { id: 'req-1', ok: true, result: { file: 'a.tar', bytes: 1 } });
    assert.deepEqual(await router.handle('files.remove', json(signed)), first);
    const moved = await router.handle('files.remove', json({ ...signed, id: 'req-9' }));
    assert.equal(errorOf(moved)?.reason, 'wrong_arguments');
    assert.equal(runs(), 1);
  });

  it('unsigned: unauthorized before the command is even looked up, nothing runs', async () => {
    const { router, runs } = signedRouter(() => T0 * 1000);
    const answer = await router.handle('files.remove', json(message));
    assert.equal(errorOf(answer)?.code, 'unauthorized');
    assert.equal(errorOf(answer)?.reason, 'unsigned');
    assert.match(errorOf(answer)!.message, /^request refused: it is not signed/);
    assert.equal(errorOf(await router.handle('no.such.command', json({ id: 'x' })))?.reason, 'unsigned');
    assert.equal(runs(), 0);
  });

  it('two copies arriving together run once: the second waits as a redelivery', async () => {
    const { router, runs } = signedRouter(() => T0 * 1000);
    const signed = json(
      await signMessage({ key: k1.signing, robot: ROBOT, command: 'files.remove', message, issuedAt: T0 }),
    );
    const [a, b] = await Promise.all([router.handle('files.remove', signed), router.handle('files.remove', signed)]);
    assert.equal(runs(), 1);
    assert.deepEqual(a ?? b, { id: 'req-1', ok: true, result: { file: 'a.tar', bytes: 1 } });
  });

  it('not required: unsigned requests run, a signature present must still verify', async () => {
    const { router, runs } = signedRouter(() => T0 * 1000, false);
    assert.equal((await router.handle('files.remove', json(message)))?.ok, true);
    const other = { ...message, id: 'r2' };
    const bad = await signMessage({
      key: stranger.signing,
      robot: ROBOT,
      command: 'files.remove',
      message: other,
      issuedAt: T0,
    });
    assert.equal(errorOf(await router.handle('files.remove', json(bad)))?.reason, 'bad_signature');
    assert.equal(runs(), 1);
  });
});

describe('signed commands: required without keys fails closed', () => {
  it('a request and a desired state are refused, signed or not', async () => {
    const now = () => T0 * 1000;
    const signing = new CommandSigning({
      policy: { required: true, keys: [] },
      keys: new Map(),
      robotId: ROBOT,
      clockSkewSeconds: SKEW,
      maxLifetimeSeconds: 120,
      replay: new ReplayStore({ dir: tempDir(), clockSkewSeconds: SKEW, now }),
      now,
    });
    const signed = await signMessage({ key: k1.signing, robot: ROBOT, command: 'files.remove', message, issuedAt: T0 });
    assert.equal(await reason(signing.verifyRequest('files.remove', signed)), 'unknown_key');
    assert.equal(await reason(signing.verifyRequest('files.remove', message)), 'unsigned');
    const desired = new DesiredSignature({
      verifier: undefined,
      required: true,
      maxLifetimeSeconds: 3600,
      maxBytes: 65536,
      dir: tempDir(),
      logger: silentLogger,
    });
    assert.equal(await reason(desired.admit(Buffer.from('{"containers":{},"signature":"x"}'))), 'unknown_key');
  });
});

describe('signed commands: the retained desired state', () => {
  function gate(now: () => number, dir = tempDir()) {
    return new DesiredSignature({
      verifier: new CommandVerifier({
        robotId: ROBOT,
        keys: new Map([['k1', k1.publicKey]]),
        clockSkewSeconds: SKEW,
        now,
      }),
      required: true,
      maxLifetimeSeconds: 3600,
      maxBytes: 64 * 1024,
      dir,
      logger: silentLogger,
    });
  }
  const desired = (version: number, issuedAt: number) =>
    signMessage({
      key: k1.signing,
      robot: ROBOT,
      command: 'desired',
      message: { containers: {}, version },
      issuedAt,
      lifetimeSeconds: 600,
    });

  it('the one in force comes again after it expired: taken (nothing changes); an older one is replayed', async () => {
    let now = T0 * 1000;
    const g = gate(() => now);
    const v2 = await desired(2, T0);
    const admitted = await g.admit(Buffer.from(JSON.stringify(v2)));
    assert.deepEqual(JSON.parse(admitted.payload.toString()), { containers: {}, version: 2 });
    admitted.accept();
    now = (T0 + 7200) * 1000;
    await g.admit(Buffer.from(JSON.stringify(v2)));
    const v1 = await desired(1, T0 - 10);
    assert.equal(await reason(g.admit(Buffer.from(JSON.stringify(v1)))), 'replayed');
    const v3 = await desired(3, T0 + 100);
    assert.equal(await reason(g.admit(Buffer.from(JSON.stringify(v3)))), 'expired');
  });

  it('the signature in force is kept in state.dir: after a restart an older desired state is still replayed', async () => {
    const dir = tempDir();
    const now = () => T0 * 1000;
    const v2 = await desired(2, T0);
    (await gate(now, dir).admit(Buffer.from(JSON.stringify(v2)))).accept();
    const restarted = gate(now, dir);
    await restarted.admit(Buffer.from(JSON.stringify(v2)));
    assert.equal(await reason(restarted.admit(Buffer.from(JSON.stringify(await desired(1, T0 - 10))))), 'replayed');
  });

  it('a record of the one in force that cannot be read fails closed: only one signed from now on is taken', async () => {
    const dir = tempDir();
    let nowSeconds = T0;
    const now = () => nowSeconds * 1000;
    // Damaged (or planted): before, every signed desired state of the last 7 days was taken again.
    writeFileSync(join(dir, DESIRED_SIGNATURE_FILE), '{ not json');
    const g = gate(now, dir);
    assert.equal(await reason(g.admit(Buffer.from(JSON.stringify(await desired(1, T0 - 3000))))), 'replayed');
    assert.equal(await reason(g.admit(Buffer.from(JSON.stringify(await desired(2, T0))))), 'replayed');
    nowSeconds = T0 + SKEW + 2;
    (await g.admit(Buffer.from(JSON.stringify(await desired(3, T0 + SKEW + 1))))).accept();
    // With no record at all (a robot's first desired state) a signed one is taken as before.
    const fresh = gate(now);
    (await fresh.admit(Buffer.from(JSON.stringify(await desired(1, nowSeconds - 10))))).accept();
  });

  it('unsigned, a clear, and a request signature used as a desired state are refused', async () => {
    const g = gate(() => T0 * 1000);
    assert.equal(await reason(g.admit(Buffer.from('{"containers":{}}'))), 'unsigned');
    assert.equal(await reason(g.admit(Buffer.alloc(0))), 'unsigned');
    const asCommand = await signMessage({
      key: k1.signing,
      robot: ROBOT,
      command: 'update',
      message: { containers: {} },
      issuedAt: T0,
    });
    assert.equal(await reason(g.admit(Buffer.from(JSON.stringify(asCommand)))), 'wrong_command');
  });
});
