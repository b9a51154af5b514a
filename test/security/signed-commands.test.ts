import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../agent/config/load-config.js';
import { main as fleet } from '../../agent/fleet/fleet-cli.js';
import { signMessage, type SigningKey } from '../../agent/fleet/request-signer.js';
import { startAgent, uniqueRobotId, type AgentUnderTest } from '../helpers/agent-harness.js';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig } from '../setup.js';

/**
 * Issue 16, signed commands, on the rig's broker (a fleet broker, as on a real fleet): a real
 * agent with security.commands.keys takes a request or a retained desired state only when one of
 * its keys signed it for this robot, this command and these arguments, once and in time; every
 * wrong variant is answered `unauthorized` with its reason and nothing happens (a file that a
 * signed files.remove would delete stays), and the agent keeps answering.
 */
const IMAGE = 'yahboomtechnology/ros-foxy:3.3.9';

interface Pair {
  signing: SigningKey;
  publicKeyFile: string;
}

const keysDir = tempDir('rfa-keys-');
function pair(kid: string, file = kid): Pair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const publicKeyFile = join(keysDir, `${file}.pub`);
  writeFileSync(publicKeyFile, (publicKey as KeyObject).export({ type: 'spki', format: 'pem' }));
  return { signing: { key: privateKey, kid }, publicKeyFile };
}

const opsA = pair('ops-a');
const opsB = pair('ops-b');
const outsider = pair('ops-c');
/** Another key under a configured id: what a forger who knows the id but not the key would make. */
const forger = pair('ops-a', 'forger');

const now = () => Math.floor(Date.now() / 1000);

describe('security: signed commands (rig broker)', function () {
  this.timeout(60_000);
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;

  afterEach(async () => {
    await probe?.close();
    await subject?.stop();
    probe = undefined;
    subject = undefined;
  });

  /** An agent on the rig broker with the given keys; exportDir holds files a files.remove can delete. */
  async function start(
    url: string,
    o: { keys?: Pair[]; robot?: string; dir?: string } = {},
  ): Promise<{ s: AgentUnderTest; p: MqttProbe; exportDir: string; dir: string; robot: string }> {
    const dir = o.dir ?? tempDir('rfa-signed-');
    const exportDir = join(dir, 'export');
    mkdirSync(exportDir, { recursive: true });
    const robot = o.robot ?? uniqueRobotId('signed');
    const keys = (o.keys ?? [opsA]).map((k) => ({ id: k.signing.kid, publicKeyFile: k.publicKeyFile }));
    const s = await startAgent({
      robot: { id: robot },
      state: { dir: join(dir, 'state') },
      mqtt: { url, protocolVersion: 5 },
      images: { allow: ['yahboomtechnology/*'], exportDir },
      containers: { ros: { image: IMAGE } },
      security: { commands: { keys } },
    });
    subject = s;
    const p = await MqttProbe.connect(url, { protocolVersion: 5 });
    probe = p;
    await p.subscribe(`${s.base}/response/#`);
    await waitUntil(() => s.agent.store.get().agent.mqtt.connected, 10_000, 'agent connected to the rig broker');
    return { s, p, exportDir, dir, robot };
  }

  const signed = (key: Pair, robot: string, command: string, message: Record<string, unknown>, extra: object = {}) =>
    signMessage({ key: key.signing, robot, command, message, ...extra });

  function assertRefused(answer: Record<string, unknown>, reason: string): void {
    const error = answer.error as { code: string; reason: string; message: string } | undefined;
    assert.equal(answer.ok, false, `accepted: ${JSON.stringify(answer)}`);
    assert.equal(error?.code, 'unauthorized', JSON.stringify(answer));
    assert.equal(error?.reason, reason, JSON.stringify(answer));
    assert.match(error.message, /^request refused: /);
  }

  it('a right signature runs; each wrong variant is unauthorized with its reason and nothing happens', async function () {
    const { s, p, exportDir, robot } = await start(needRig(this).mqtt.url);
    for (const f of ['a.tar', 'b.tar']) writeFileSync(join(exportDir, f), 'x');
    const state = s.agent.store.get().agent.commandSigning;
    assert.deepEqual(state, { required: true, keys: ['ops-a'] });

    const remove = (id: string) => ({ id, file: 'a.tar' });
    const cases: Array<[string, Record<string, unknown>]> = [
      ['unsigned', remove('u1')],
      [
        'expired',
        await signed(opsA, robot, 'files.remove', remove('e1'), { issuedAt: now() - 300, lifetimeSeconds: 60 }),
      ],
      ['wrong_robot', await signed(opsA, `${robot}-other`, 'files.remove', remove('w1'))],
      ['wrong_command', { ...(await signed(opsA, robot, 'ping', remove('c1'))) }],
      [
        'wrong_arguments',
        { ...(await signed(opsA, robot, 'files.remove', { id: 'g1', file: 'b.tar' })), file: 'a.tar' },
      ],
      ['unknown_key', await signed(outsider, robot, 'files.remove', remove('k1'))],
      ['bad_signature', await signed(forger, robot, 'files.remove', remove('f1'))],
      ['token_too_large', { ...remove('t1'), signature: 'e'.repeat(64 * 1024) }],
      ['bad_token', { ...remove('t2'), signature: 'not-a-jws' }],
      ['lifetime_too_long', await signed(opsA, robot, 'files.remove', remove('l1'), { lifetimeSeconds: 3600 })],
    ];
    for (const [reason, body] of cases) {
      assertRefused(await p.request(s.base, 'files.remove', body), reason);
    }
    assert.ok(existsSync(join(exportDir, 'a.tar')), 'a refused request deleted the file');
    // An unknown command unsigned is refused as unsigned: the robot tells a stranger nothing of its commands.
    assertRefused(await p.request(s.base, 'no.such.command', { id: 'n1' }), 'unsigned');

    const ok = await p.request(s.base, 'files.remove', await signed(opsA, robot, 'files.remove', remove('ok1')));
    assert.equal(ok.ok, true, JSON.stringify(ok));
    assert.ok(!existsSync(join(exportDir, 'a.tar')));
    // The agent lived through all of it, and said so in its log: one line, not one per refusal.
    assert.equal((await p.request(s.base, 'ping', await signed(opsA, robot, 'ping', { id: 'alive' }))).ok, true);
    const logged = s.logs.filter((l) => l.msg === 'request refused: unauthorized');
    assert.equal(logged.length, 1, JSON.stringify(logged));
    assert.equal(logged[0]!.reason, 'unsigned');
  });

  it('a signature is good once: the same bytes again get the answer, not a run; after a restart, replayed', async function () {
    const url = needRig(this).mqtt.url;
    const first = await start(url);
    const { robot, dir, exportDir } = first;
    writeFileSync(join(exportDir, 'b.tar'), 'x');
    const request = await signed(opsA, robot, 'files.remove', { id: 'once', file: 'b.tar' });
    assert.equal((await first.p.request(first.s.base, 'files.remove', request)).ok, true);
    writeFileSync(join(exportDir, 'b.tar'), 'x');
    // A redelivery (same bytes) while the agent remembers the answer: that answer, no second run.
    assert.equal((await first.p.request(first.s.base, 'files.remove', request)).ok, true);
    assert.ok(existsSync(join(exportDir, 'b.tar')), 'the redelivery ran again');
    await first.p.close();
    await first.s.stop();

    const second = await start(url, { robot, dir });
    assertRefused(await second.p.request(second.s.base, 'files.remove', request), 'replayed');
    assert.ok(existsSync(join(exportDir, 'b.tar')), 'the replay ran');
  });

  it('an unsigned retained desired is refused (state.desired.rejected says why); a signed one applies, an older one not', async function () {
    const { s, p, robot } = await start(needRig(this).mqtt.url);
    const topic = `${s.base}/desired`;
    try {
      const unsigned = { containers: { ros: { enabled: false } }, version: 'unsigned' };
      await p.client.publishAsync(topic, JSON.stringify(unsigned), { qos: 1, retain: true });
      const rejected = await waitUntil(
        () => s.agent.store.get().desired.rejected,
        10_000,
        'the unsigned desired refused',
      );
      assert.equal(rejected.code, 'unauthorized');
      assert.equal(rejected.reason, 'unsigned');
      assert.equal(s.agent.store.get().desired.appliedAt, null);

      const v2 = await signed(opsA, robot, 'desired', { containers: { ros: { enabled: false } }, version: 'v2' });
      await p.client.publishAsync(topic, JSON.stringify(v2), { qos: 1, retain: true });
      await waitUntil(() => s.agent.store.get().desired.version === 'v2', 10_000, 'the signed desired applied');
      assert.equal(s.agent.store.get().desired.rejected, undefined);

      const v1 = { containers: { ros: { enabled: true } }, version: 'v1' };
      const older = await signed(opsA, robot, 'desired', v1, { issuedAt: now() - 60 });
      await p.client.publishAsync(topic, JSON.stringify(older), { qos: 1, retain: true });
      const replayed = await waitUntil(() => s.agent.store.get().desired.rejected, 10_000, 'the older desired refused');
      assert.equal(replayed.reason, 'replayed');
      assert.equal(s.agent.store.get().desired.version, 'v2');
      // An empty message (a clear) carries no signature: refused, the signed state stays.
      await p.client.publishAsync(topic, JSON.stringify(v2), { qos: 1, retain: true });
      await waitUntil(() => s.agent.store.get().desired.rejected === undefined, 10_000, 'v2 again clears the refusal');
      await p.client.publishAsync(topic, '', { qos: 1, retain: true });
      await waitUntil(() => s.agent.store.get().desired.rejected?.reason === 'unsigned', 10_000, 'the clear refused');
      assert.equal(s.agent.store.get().desired.version, 'v2');
    } finally {
      await p.client.publishAsync(topic, '', { qos: 1, retain: true });
    }
  });

  it('key rotation: with two keys either signs; once the old one is removed, its signatures are unknown_key', async function () {
    const url = needRig(this).mqtt.url;
    const both = await start(url, { keys: [opsA, opsB] });
    const { robot, dir } = both;
    assert.equal((await both.p.request(both.s.base, 'ping', await signed(opsA, robot, 'ping', { id: 'a' }))).ok, true);
    assert.equal((await both.p.request(both.s.base, 'ping', await signed(opsB, robot, 'ping', { id: 'b' }))).ok, true);
    await both.p.close();
    await both.s.stop();

    const rotated = await start(url, { keys: [opsB], robot, dir });
    const old = await signed(opsA, robot, 'ping', { id: 'a2' });
    assertRefused(await rotated.p.request(rotated.s.base, 'ping', old), 'unknown_key');
    assert.equal(
      (await rotated.p.request(rotated.s.base, 'ping', await signed(opsB, robot, 'ping', { id: 'b2' }))).ok,
      true,
    );
  });

  it('robot-fleet keygen makes a pair; send, update and desired sign with --sign-key (or ROBOT_FLEET_SIGN_KEY)', async function () {
    const url = needRig(this).mqtt.url;
    const dir = tempDir('rfa-keygen-');
    const lines: string[] = [];
    const collect = (s: string) => void lines.push(s);
    assert.equal(await fleet(['keygen', '--out', join(dir, 'keys')], {}, collect, collect), 0);
    const kid = /^kid: (\S+)$/m.exec(lines.join('\n'))![1]!;
    const keyFile = join(dir, 'keys', `${kid}.key`);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const made: Pair = { signing: { key: undefined as never, kid }, publicKeyFile: join(dir, 'keys', `${kid}.pub`) };
    const { s, robot } = await start(url, { keys: [made] });
    const common = ['--broker', url, '--timeout', '10'];
    const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const out: string[] = [];
      const code = await fleet(
        [...common, ...args],
        env,
        (t) => void out.push(t),
        (t) => void out.push(t),
      );
      return { code, text: out.join('\n') };
    };
    const unsigned = await run(['send', robot, 'ping']);
    assert.equal(unsigned.code, 1);
    assert.match(unsigned.text, /"reason": "unsigned"/);
    assert.equal((await run(['send', robot, 'ping', '--sign-key', keyFile])).code, 0);
    assert.equal((await run(['send', robot, 'ping'], { ROBOT_FLEET_SIGN_KEY: keyFile })).code, 0);
    // --sign-kid names the id robots know the key by; a wrong one is unknown_key there.
    const wrongKid = await run(['send', robot, 'ping', '--sign-key', keyFile, '--sign-kid', 'not-listed']);
    assert.equal(wrongKid.code, 1);
    assert.match(wrongKid.text, /"reason": "unknown_key"/);
    // update is signed too: it gets as far as the update flow, which answers about the container.
    const update = await run(['update', robot, 'ros', 'yahboomtechnology/ros-foxy:3.4.0', '--sign-key', keyFile]);
    assert.doesNotMatch(update.text, /unauthorized/);
    const wish = '{"containers":{"ros":{"enabled":false}},"version":"cli"}';
    const desired = await run(['desired', robot, wish, '--sign-key', keyFile]);
    assert.equal(desired.code, 0, desired.text);
    try {
      await waitUntil(
        () => s.agent.store.get().desired.version === 'cli',
        10_000,
        'the desired from robot-fleet applied',
      );
    } finally {
      await probe!.client.publishAsync(`${s.base}/desired`, '', { qos: 1, retain: true });
    }
    assert.equal((await run(['send', robot, 'ping', '--sign-key', join(dir, 'missing.key')])).code, 2);
    // robot-fleet status shows which keys the robot takes.
    assert.match((await run(['status', robot])).text, new RegExp(`^  commands    signed \\(keys ${kid}\\)$`, 'm'));
  });

  it('without keys on a fleet broker, unsigned commands are taken with a warning in the state', async function () {
    const s = await startAgent({ mqtt: { url: needRig(this).mqtt.url, protocolVersion: 5 } });
    subject = s;
    const signing = s.agent.store.get().agent.commandSigning;
    assert.equal(signing?.required, false);
    assert.match(signing?.warning ?? '', /not signed/);
    assert.ok(s.logs.some((l) => l.code === 'commands_unsigned'));
  });

  it('refuses a config that requires signatures but names no key, or a key that is not Ed25519', () => {
    const dir = tempDir();
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(join(dir, 'ec.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    const problems = (security: object): string[] => {
      try {
        loadConfig({ file: writeYaml(dir, 'c.yaml', { robot: { id: 'r' }, security }), env: {} });
        return [];
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.problems;
      }
    };
    assert.match(
      problems({ commands: { required: true } }).join('\n'),
      /required: is true, but security\.commands\.keys is empty/,
    );
    assert.match(
      problems({ commands: { keys: [{ id: 'ec', publicKeyFile: join(dir, 'ec.pub') }] } }).join('\n'),
      /is a ec key/,
    );
    assert.match(
      problems({ commands: { keys: [{ id: 'x', publicKeyFile: join(dir, 'none.pub') }] } }).join('\n'),
      /cannot read/,
    );
  });

  it('check-config says whether commands must be signed, and warns of a fleet broker without keys', async () => {
    const dir = tempDir();
    const fleetBroker = writeYaml(dir, 'fleet.yaml', {
      robot: { id: 'r' },
      mqtt: { url: 'mqtts://fleet.example:8883' },
    });
    const unsigned = spawnAgent(['check-config', '--config', fleetBroker]);
    assert.equal(await unsigned.exited(), 0);
    assert.match(unsigned.stdout.join('\n'), /^commands: unsigned accepted$/m);
    assert.match(unsigned.stderr.join('\n'), /^warning: commands are not signed/m);
    const keys = { commands: { keys: [{ id: 'ops-a', publicKeyFile: opsA.publicKeyFile }] } };
    const signedFile = writeYaml(dir, 'signed.yaml', { robot: { id: 'r' }, security: keys });
    const required = spawnAgent(['check-config', '--config', signedFile]);
    assert.equal(await required.exited(), 0);
    assert.match(required.stdout.join('\n'), /^commands: signatures required \(keys ops-a\)$/m);
    assert.deepEqual(required.stderr, []);
  });
});

/** The library faketime preloads, where Debian puts it (any architecture). */
function libfaketime(): string {
  for (const arch of readdirSync('/usr/lib')) {
    const file = join('/usr/lib', arch, 'faketime', 'libfaketime.so.1');
    if (existsSync(file)) return file;
  }
  throw new Error('libfaketime is not installed (scripts/rig-deps.sh installs faketime)');
}

describe("security: signed commands with the robot's clock moved (faketime)", function () {
  this.timeout(60_000);
  let agent: AgentProcess | undefined;

  afterEach(async () => {
    agent?.kill('SIGTERM');
    await agent?.exited().catch(() => agent?.kill('SIGKILL'));
    agent = undefined;
  });

  it('a robot 20 s behind takes signatures within the 30 s skew on both sides, and refuses beyond', async function () {
    const rig = needRig(this);
    const dir = tempDir('rfa-faketime-');
    const robot = uniqueRobotId('faketime');
    const config = writeYaml(dir, 'config.yaml', {
      robot: { id: robot },
      mqtt: { url: rig.mqtt.url, protocolVersion: 5 },
      docker: { socketPath: join(dir, 'no-docker.sock') },
      state: { dir: join(dir, 'state') },
      security: { commands: { keys: [{ id: 'ops-a', publicKeyFile: opsA.publicKeyFile }], clockSkewSeconds: 30 } },
      log: { level: 'info' },
    });
    agent = spawnAgent(['run', '--config', config], { LD_PRELOAD: libfaketime(), FAKETIME: '-20' });
    const base = `fleet/${robot}`;
    const probe = await MqttProbe.connect(rig.mqtt.url, { protocolVersion: 5 });
    try {
      await probe.subscribe(`${base}/response/#`, `${base}/state/agent`);
      await probe.waitForTopic(`${base}/state/agent`, 20_000);
      const send = async (id: string, issuedAt: number, lifetimeSeconds = 60) =>
        probe.request(
          base,
          'ping',
          await signMessage({
            key: opsA.signing,
            robot,
            command: 'ping',
            message: { id },
            issuedAt,
            lifetimeSeconds,
          }),
        );
      const t = now();
      // The robot's clock really is behind: its pong is dated about 20 s ago.
      const pong = await send('now', t);
      assert.equal(pong.ok, true, JSON.stringify(pong));
      const lag = t - Date.parse((pong.result as { ts: string }).ts) / 1000;
      assert.ok(lag > 10 && lag < 25, `the robot's clock is ${lag} s behind`);
      // Signed 25 s ahead of real time: 45 s ahead of the robot, beyond the skew.
      const ahead = await send('ahead', t + 25);
      assert.equal((ahead.error as { reason?: string } | undefined)?.reason, 'not_yet_valid', JSON.stringify(ahead));
      // Expired 15 s before the robot's now (35 s ago by real time): within the skew...
      assert.equal((await send('late', t - 95, 60)).ok, true);
      // ...and 40 s before it: beyond.
      const expired = await send('old', t - 120, 60);
      assert.equal((expired.error as { reason?: string } | undefined)?.reason, 'expired', JSON.stringify(expired));
    } finally {
      await probe.close();
    }
  });
});
