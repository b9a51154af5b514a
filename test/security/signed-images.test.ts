import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { signImage } from '../../agent/fleet/fleet-sign.js';
import { parseImageReference } from '../../agent/core/image-reference.js';
import { cosignIdentity, signatureTag } from '../../agent/core/image-signature.js';
import type { ImageSummary, UpdateResult } from '../../agent/state/types.js';
import { Contract } from '../helpers/contract.js';
import { docker } from '../helpers/engine-cli.js';
import { useRigAgent } from '../helpers/rig-agent.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { startRegistry } from '../rig/registry.js';
import { needRig, rig } from '../setup.js';

const MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI = 'application/vnd.oci.image.manifest.v1+json';

/** The registry's HTTP API, as an attacker with push rights (or a compromised registry) uses it. */
const registry = {
  url: () => rig().registry.url,
  async manifest(
    repo: string,
    reference: string,
    accept = `${MANIFEST}, ${OCI}`,
  ): Promise<{ bytes: Buffer; type: string; digest: string }> {
    const r = await fetch(`${registry.url()}/v2/${repo}/manifests/${reference}`, { headers: { accept } });
    assert.equal(r.status, 200, `GET ${repo}:${reference}`);
    const bytes = Buffer.from(await r.arrayBuffer());
    return {
      bytes,
      type: r.headers.get('content-type')!,
      digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    };
  },
  async put(repo: string, reference: string, m: { bytes: Buffer; type: string }): Promise<void> {
    const r = await fetch(`${registry.url()}/v2/${repo}/manifests/${reference}`, {
      method: 'PUT',
      body: m.bytes,
      headers: { 'content-type': m.type },
    });
    assert.equal(r.status, 201, `PUT ${repo}:${reference}: ${await r.text()}`);
  },
  /**
   * Copies a manifest (an image, or a signature manifest) to another repository or tag: its
   * blobs by cross-repository mount, then the same bytes, so the digest is the same.
   */
  async copy(from: string, to: string, accept = `${MANIFEST}, ${OCI}`): Promise<string> {
    const [fromRepo, fromTag] = from.split(':') as [string, string];
    const [toRepo, toTag] = to.split(':') as [string, string];
    const m = await registry.manifest(fromRepo, fromTag, accept);
    const doc = JSON.parse(m.bytes.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
    if (toRepo !== fromRepo) {
      for (const digest of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) {
        const r = await fetch(`${registry.url()}/v2/${toRepo}/blobs/uploads/?mount=${digest}&from=${fromRepo}`, {
          method: 'POST',
        });
        assert.equal(r.status, 201, `mount ${digest} into ${toRepo}`);
      }
    }
    await registry.put(toRepo, toTag, m);
    return m.digest;
  },
  /** The same image under a new manifest digest (the same JSON, laid out otherwise): another digest, nothing signed. */
  async variant(repo: string, from: string, to: string): Promise<string> {
    const m = await registry.manifest(repo, from);
    const bytes = Buffer.from(JSON.stringify(JSON.parse(m.bytes.toString()), null, 1));
    await registry.put(repo, to, { bytes, type: m.type });
    return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  },
  async configDigest(repo: string, tag: string): Promise<string> {
    return (JSON.parse((await registry.manifest(repo, tag)).bytes.toString()) as { config: { digest: string } }).config
      .digest;
  },
};

/**
 * Issue 16.2/16.3: with images.verify, an image runs only when a trusted key signed its digest
 * for its repository (cosign's .sig layout on Debian's docker-registry 2.8), by digest; every
 * other case is unsigned_image with its reason, nothing pulled, the running container untouched.
 */
describe('security: signed images (images.verify) on the rig', function () {
  this.timeout(180_000);
  const rigAgent = useRigAgent();
  let keys: { dir: string; fleet: KeyObject; stranger: KeyObject };
  const host = () => rig().registry.host;
  const repo = 'yahboomtechnology/signed-ros';
  const other = 'yahboomtechnology/other-ros';
  const image = (tag: string, r = repo) => `${host()}/${r}:${tag}`;
  const digests: Record<string, string> = {};
  const ask = (command: string, body: Record<string, unknown>, ms = 90_000) => rigAgent.ask(command, body, ms);
  const error = (r: Record<string, unknown>) =>
    r.ok ? { code: 'ok', message: JSON.stringify(r.result) } : (r.error as { code: string; message: string });
  type Inspected = { Id: string; Image: string; Config: { Image: string }; State: { Running: boolean } };
  const inspect = (name: string) => JSON.parse(docker('inspect', name))[0] as Inspected;
  const localIds = () => docker('image', 'ls', '-aq', '--no-trunc').split('\n').filter(Boolean);

  async function agent(
    containerImage = image('a'),
    more: {
      verify?: unknown[];
      allow?: string[];
      snapshots?: Record<string, unknown>;
      registries?: Record<string, unknown>;
    } = {},
  ): Promise<void> {
    const dir = tempDir('rfa-signed-');
    const fleetKey = join(keys.dir, 'fleet.key.pub');
    await rigAgent.start({
      images: {
        allow: [`${host()}/yahboomtechnology/*`, `${host()}/fleet/*`, ...(more.allow ?? [])],
        pushAllow: [`${host()}/fleet/*`],
        verify: [{ pattern: `${host()}/yahboomtechnology/*`, keys: [fleetKey] }, ...(more.verify ?? [])],
      },
      ...(more.snapshots ? { snapshots: more.snapshots } : {}),
      ...(more.registries ? { registries: more.registries } : {}),
      devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
      update: { stableSeconds: 1, healthTimeout: 10, lockFile: join(dir, 'no.lock') },
      containers: { ros: { image: containerImage, stopTimeout: 1 } },
    });
  }

  async function running(): Promise<{ Id: string; Image: string; Config: { Image: string } }> {
    await waitUntil(
      () => rigAgent.subject.agent.store.get().containers.find((c) => c.name === 'ros')?.state === 'running',
      60_000,
      'ros running',
    );
    return inspect('ros');
  }

  before(async function () {
    needRig(this);
    const dir = tempDir('rfa-signkeys-');
    // The CLI makes the fleet's pair; openssl the stranger's (any P-256 PEM key will do).
    execFileSync('node', [
      join(process.cwd(), 'build/agent/fleet/main.js'),
      'sign',
      '--keygen',
      join(dir, 'fleet.key'),
    ]);
    execFileSync('openssl', ['ecparam', '-genkey', '-name', 'prime256v1', '-noout', '-out', join(dir, 'stranger.key')]);
    keys = {
      dir,
      fleet: createPrivateKey(readFileSync(join(dir, 'fleet.key'))),
      stranger: createPrivateKey(readFileSync(join(dir, 'stranger.key'))),
    };
    const fixtures = 'yahboomtechnology/ros-foxy';
    digests.a = await registry.copy(`${fixtures}:3.3.9`, `${repo}:a`);
    digests.b = await registry.copy(`${fixtures}:3.4.0`, `${repo}:b`);
    digests.unsigned = await registry.copy(`${fixtures}:healthy`, `${repo}:unsigned`);
    digests.stranger = await registry.copy(`${fixtures}:unhealthy`, `${repo}:stranger`);
    digests.crash = await registry.copy(`${fixtures}:crash`, `${repo}:crash`);
    // Signed by the fleet: a (with the CLI, as an operator would), b and moved (moved names a's digest for now).
    const cli = execFileSync('node', [
      join(process.cwd(), 'build/agent/fleet/main.js'),
      'sign',
      image('a'),
      '--key',
      join(dir, 'fleet.key'),
    ]).toString();
    assert.match(cli, new RegExp(`signed ${image('a')} \\(${digests.a}\\)`));
    await signImage({ image: image('b'), key: keys.fleet });
    await registry.copy(`${repo}:a`, `${repo}:moved`);
    await signImage({ image: image('moved'), key: keys.fleet });
    await signImage({ image: image('stranger'), key: keys.stranger });
    // Signing again adds nothing; another key adds a second signature to the same manifest.
    assert.equal((await signImage({ image: image('a'), key: keys.fleet })).signatures, 1);
    // Then the tag is moved to another (unsigned) digest, as someone with push rights could.
    await registry.put(repo, 'moved', await registry.manifest(repo, 'crash'));
    // The same bytes as b in another repository, and b's signature copied beside it.
    assert.equal(await registry.copy(`${repo}:b`, `${other}:b`), digests.b);
    await registry.copy(`${repo}:${signatureTag(digests.b)}`, `${other}:${signatureTag(digests.b)}`, OCI);
    // Another digest given a's signature manifest: a trusted signature, for another digest.
    digests.copied = await registry.variant(repo, 'crash', 'copied-sig');
    await registry.copy(`${repo}:${signatureTag(digests.a)}`, `${repo}:${signatureTag(digests.copied)}`, OCI);
  });

  it('signed: the container is created from repository@digest, state says verified; an update runs by digest too', async () => {
    await agent();
    const first = await running();
    assert.equal(first.Config.Image, `${host()}/${repo}@${digests.a}`);
    const images = rigAgent.subject.agent.store.get().images as ImageSummary[];
    const verified = images.find((i) => i.id === first.Image)?.verified;
    assert.ok(verified, JSON.stringify(images));
    assert.equal(verified.digest, digests.a);
    assert.equal(verified.key, join(keys.dir, 'fleet.key.pub'));
    const state = rigAgent.subject.agent.store.get().containers.find((c) => c.name === 'ros')!;
    assert.equal(state.runImage, `${host()}/${repo}@${digests.a}`);
    // The state and the plan (before a pull) say so, as their schemas document.
    const contract = new Contract();
    contract.assert('state.json', { ...rigAgent.subject.agent.store.get(), ts: new Date().toISOString() });
    const plan = await ask('plan', { image: image('b') });
    assert.deepEqual((plan.result as { verified: unknown }).verified, {
      digest: digests.b,
      key: join(keys.dir, 'fleet.key.pub'),
    });
    assert.deepEqual(contract.commandResultProblems('plan', plan.result), []);
    const pulled = await ask('pull', { image: image('b') });
    assert.equal(
      (pulled.result as { verified?: { digest: string } }).verified?.digest,
      digests.b,
      JSON.stringify(pulled),
    );
    assert.deepEqual(contract.commandResultProblems('pull', pulled.result), []);
    const r = await ask('update', { container: 'ros', image: image('b') });
    assert.equal((r.result as UpdateResult | undefined)?.status, 'done', JSON.stringify(r));
    const after = inspect('ros');
    assert.equal(after.Config.Image, `${host()}/${repo}@${digests.b}`);
    assert.equal(after.Image, `sha256:${(await registry.configDigest(repo, 'b')).slice(7)}`);
    // Back to a, verified here before: no pull, no registry needed (an offline robot), by digest.
    const id = `back-${Date.now()}`;
    const back = await rigAgent.probe.request(
      rigAgent.subject.base,
      'update',
      { id, container: 'ros', image: image('a') },
      90_000,
    );
    assert.equal((back.result as UpdateResult | undefined)?.status, 'done', JSON.stringify(back));
    assert.equal(inspect('ros').Config.Image, `${host()}/${repo}@${digests.a}`);
    const pulls = rigAgent.probe.received.filter(
      (m) => m.topic === `${rigAgent.subject.base}/events` && m.text.includes('"pull.') && m.text.includes(id),
    );
    assert.deepEqual(
      pulls.map((m) => m.text),
      [],
    );
  });

  it('refuses unsigned, unknown-key, moved-tag, copied and misplaced signatures: nothing pulled, the container untouched', async () => {
    await agent();
    const before = await running();
    const cases: Array<[string, string, string]> = [
      [image('unsigned'), 'no_signature', 'unsigned'],
      [image('stranger'), 'unknown_key', 'stranger'],
      [image('moved'), 'no_signature', 'crash'],
      [image('copied-sig'), 'digest_mismatch', 'crash'],
      [image('b', other), 'wrong_repository', 'b'],
    ];
    for (const [target, reason, content] of cases) {
      const config =
        content === 'b' ? await registry.configDigest(other, 'b') : await registry.configDigest(repo, content);
      const r = await ask('update', { container: 'ros', image: target, force: true });
      const e = error(r);
      assert.equal(e.code, 'unsigned_image', `${target}: ${JSON.stringify(r)}`);
      assert.match(e.message, new RegExp(`\\(${reason}: `), target);
      // Nothing of it was pulled (b's content is here already from nowhere: it was never pulled).
      if (content !== 'b') assert.ok(!localIds().includes(config), `${target} was pulled`);
      const now = inspect('ros');
      assert.equal(now.Id, before.Id, `${target}: the container was replaced`);
      assert.equal(now.Config.Image, before.Config.Image);
      assert.ok(now.State.Running);
    }
    // A restore is an update to the image: refused alike.
    const restore = error(await ask('restore', { container: 'ros', image: image('unsigned') }));
    assert.equal(restore.code, 'unsigned_image');
    assert.equal(inspect('ros').Id, before.Id);
    // The plan says it would be refused, and why.
    assert.match(error(await ask('plan', { image: image('stranger') })).message, /\(unknown_key: /);
  });

  it('a tag moved after verification changes nothing: the container keeps the verified digest, the check refuses the new one', async () => {
    // "moved-late" is signed while it names a, the container runs it, then the tag is moved.
    await registry.copy(`${repo}:a`, `${repo}:late`);
    await agent(image('late'));
    const before = await running();
    assert.equal(before.Config.Image, `${host()}/${repo}@${digests.a}`);
    await registry.put(repo, 'late', await registry.manifest(repo, 'crash'));
    const checked = await ask('update.check', {});
    const results = checked.result as Array<{ container: string; changed: boolean }>;
    assert.ok(results.find((c) => c.container === 'ros')?.changed, JSON.stringify(checked));
    // The background update the check started fails verification (update.failed with unsigned_image).
    const failed = await rigAgent.probe.waitFor(
      (m) =>
        m.topic === `${rigAgent.subject.base}/events` &&
        m.text.includes('"update.failed"') &&
        m.text.includes('unsigned_image'),
      60_000,
      'update.failed unsigned_image',
    );
    assert.match(failed.text, /no_signature/);
    const now = inspect('ros');
    assert.equal(now.Id, before.Id);
    assert.equal(now.Config.Image, `${host()}/${repo}@${digests.a}`);
    assert.ok(!localIds().includes(await registry.configDigest(repo, 'crash')));
    // Put back, so the next run of this file finds the same registry.
    await registry.put(repo, 'late', await registry.manifest(repo, 'a'));
  });

  it('a snapshot the robot pushes is signed by its own key (snapshots.signKeyFile) and verifies with its public key', async () => {
    execFileSync('node', [
      join(process.cwd(), 'build/agent/fleet/main.js'),
      'sign',
      '--keygen',
      join(keys.dir, 'robot.key'),
    ]);
    const robotPub = join(keys.dir, 'robot.key.pub');
    await agent(image('a'), {
      snapshots: { repository: `${host()}/fleet/snapshots`, signKeyFile: join(keys.dir, 'robot.key') },
      verify: [{ pattern: `${host()}/fleet/*`, keys: [robotPub] }],
    });
    await running();
    docker('exec', 'ros', 'sh', '-c', 'echo work > /root/work.txt');
    const taken = await ask('snapshot', { container: 'ros', push: true });
    const result = taken.result as { image: string; pushed?: { digest: string; signature?: string } };
    assert.ok(result?.pushed?.signature, JSON.stringify(taken));
    assert.equal(result.pushed.signature, `${host()}/fleet/snapshots:${signatureTag(result.pushed.digest)}`);
    const plan = await ask('plan', { image: result.image });
    assert.deepEqual(
      (plan.result as { verified: unknown }).verified,
      { digest: result.pushed.digest, key: robotPub },
      JSON.stringify(plan),
    );
  });

  it('Docker Hub names through a site mirror signed with robot-fleet sign --mirror: verified, run by image id', async () => {
    // Docker Hub names, served by the rig registry as docker.io's mirror (the origin is unreachable).
    // Vetted copies under Yahboom's own names, signed in the site mirror (robot-fleet sign --mirror).
    const hub = parseImageReference('yahboomtechnology/signed-ros:a');
    const cli = [
      join(process.cwd(), 'build/agent/fleet/main.js'),
      'sign',
      hub.familiar,
      '--key',
      join(keys.dir, 'fleet.key'),
    ];
    const said = execFileSync('node', [...cli, '--mirror', registry.url(), '--json']).toString();
    const signed = JSON.parse(said) as { digest: string; signature: string };
    assert.equal(signed.digest, digests.a);
    assert.equal(signed.signature, `yahboomtechnology/signed-ros:${signatureTag(digests.a)}`);
    // The payload names the image's own repository (index.docker.io/...), not the mirror's host.
    const sigManifest = JSON.parse((await registry.manifest(repo, signatureTag(digests.a), OCI)).bytes.toString()) as {
      layers: Array<{ digest: string }>;
    };
    const payloads = await Promise.all(
      sigManifest.layers.map(async (l) => (await fetch(`${registry.url()}/v2/${repo}/blobs/${l.digest}`)).text()),
    );
    assert.ok(
      payloads.some((p) => p.includes(`"docker-reference":"${cosignIdentity(hub)}"`)),
      payloads.join('\n'),
    );
    await agent(hub.familiar, {
      allow: ['yahboomtechnology/*'],
      verify: [{ pattern: 'yahboomtechnology/*', keys: [join(keys.dir, 'fleet.key.pub')] }],
      registries: { 'docker.io': { mirror: registry.url() } },
    });
    const ros = await running();
    assert.equal(ros.Config.Image, ros.Image);
    const verified = (rigAgent.subject.agent.store.get().images as ImageSummary[]).find(
      (i) => i.id === ros.Image,
    )?.verified;
    assert.equal(verified?.digest, digests.a);
    assert.equal(verified?.image, hub.familiar);
    // Asked by digest through the mirror: pulled, and kept under the mirror's name (its only one).
    execFileSync('node', [
      ...cli.slice(0, 2),
      'yahboomtechnology/signed-ros:b',
      ...cli.slice(3),
      '--mirror',
      registry.url(),
    ]);
    const byDigest = await ask('pull', { image: `yahboomtechnology/signed-ros@${digests.b}` });
    assert.equal(error(byDigest).code, 'ok', JSON.stringify(byDigest));
    assert.ok(localIds().includes(await registry.configDigest(repo, 'b')), 'the image pulled by digest is still here');
    // The unsigned one through the same mirror is refused.
    const r = error(await ask('update', { container: 'ros', image: 'yahboomtechnology/signed-ros:unsigned' }));
    assert.equal(r.code, 'unsigned_image', r.message);
    assert.equal(inspect('ros').Id, ros.Id);
  });

  it("a plain mirror holding the image without its signatures: the origin's signatures count", async () => {
    const plain = await startRegistry(tempDir('rfa-plain-mirror-'));
    try {
      // The image copied to the mirror as is (same digest), its .sig not.
      const m = await registry.manifest(repo, 'a');
      const doc = JSON.parse(m.bytes.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
      for (const digest of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) {
        const blob = Buffer.from(await (await fetch(`${registry.url()}/v2/${repo}/blobs/${digest}`)).arrayBuffer());
        const started = await fetch(`${plain.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
        const upload = new URL(started.headers.get('location')!, plain.url);
        upload.searchParams.set('digest', digest);
        const put = await fetch(upload, {
          method: 'PUT',
          body: blob,
          headers: { 'content-type': 'application/octet-stream' },
        });
        assert.equal(put.status, 201, `blob ${digest} to the mirror`);
      }
      const put = await fetch(`${plain.url}/v2/${repo}/manifests/a`, {
        method: 'PUT',
        body: m.bytes,
        headers: { 'content-type': m.type },
      });
      assert.equal(put.status, 201);
      await agent(image('a'), { registries: { [host()]: { mirror: plain.url } } });
      const ros = await running();
      assert.equal(ros.Config.Image, ros.Image, 'pulled through the mirror, so run by id');
      const verified = (rigAgent.subject.agent.store.get().images as ImageSummary[]).find(
        (i) => i.id === ros.Image,
      )?.verified;
      assert.equal(verified?.digest, digests.a);
    } finally {
      await plain.stop();
    }
  });

  it("an unsigned image in the robot's config is never run: the container stays absent with unsigned_image", async () => {
    await agent(image('unsigned'));
    const state = await waitUntil(
      () => rigAgent.subject.agent.store.get().containers.find((c) => c.name === 'ros' && c.error),
      60_000,
      'ros error',
    );
    assert.equal(state.error!.code, 'unsigned_image', JSON.stringify(state));
    assert.equal(state.state, 'absent');
    assert.equal(docker('ps', '-aq'), '');
    assert.ok(!localIds().includes(await registry.configDigest(repo, 'unsigned')));
  });
});
