import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseImageReference } from '../../agent/core/image-reference.js';
import {
  KEY_HINT,
  cosignIdentity,
  keyId,
  signPayload,
  signatureTag,
  simpleSigningPayload,
  verifySignatures,
  type TrustedKey,
} from '../../agent/core/image-signature.js';
import { loadVerifyRules } from '../../agent/config/image-keys.js';
import { signatureConfig } from '../../agent/images/signature-store.js';
import { tempDir } from '../helpers/temp.js';

const DIGEST = `sha256:${'1545e1d2cf0afe5df99fe5f1d39eef8429a2018c3734dd3bdfcac5a068189e39'}`;
const repo = parseImageReference('registry.lab.example/fleet/ros-foxy:3.4.0');

function pair(): { priv: KeyObject; trusted: TrustedKey } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    priv: privateKey,
    trusted: { id: keyId(publicKey), file: `/keys/${keyId(publicKey).slice(0, 6)}.pub`, key: publicKey },
  };
}

function signed(priv: KeyObject, o: { digest?: string; identity?: string; hint?: string } = {}) {
  const payload = simpleSigningPayload({
    identity: o.identity ?? cosignIdentity(repo),
    digest: o.digest ?? DIGEST,
    ...(o.hint ? { optional: { [KEY_HINT]: o.hint } } : {}),
  });
  return { payload, signature: signPayload(payload, priv) };
}

describe('image signatures (cosign simple signing, ECDSA P-256)', () => {
  it('writes the payload byte for byte as cosign does (Go json.Marshal of SimpleContainerImage)', () => {
    // As `cosign verify` prints a payload signed without annotations (cosign docs and user
    // reports): struct order, no spaces, optional null.
    const expected =
      '{"critical":{"identity":{"docker-reference":"quay.io/petbattle/pet-battle-api"},' +
      `"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"},"optional":null}`;
    assert.equal(
      simpleSigningPayload({ identity: 'quay.io/petbattle/pet-battle-api', digest: DIGEST }).toString(),
      expected,
    );
    // Annotations: a Go map, so keys sorted; <, > and & escaped as Go does.
    const annotated = simpleSigningPayload({
      identity: 'a/b',
      digest: DIGEST,
      optional: { z: '1', a: '<&>' },
    }).toString();
    assert.match(annotated, /"optional":\{"a":"\\u003c\\u0026\\u003e","z":"1"\}\}$/);
    assert.equal(cosignIdentity(parseImageReference('ubuntu:22.04')), 'index.docker.io/library/ubuntu');
    assert.equal(signatureTag(DIGEST), `sha256-${DIGEST.slice(7)}.sig`);
  });

  it("writes the signature image's config as cosign does (233 bytes for one signature, as in cosign's .sig manifests)", () => {
    const one = signatureConfig([DIGEST]);
    assert.equal(one.length, 233);
    assert.match(one.toString(), /^\{"architecture":"","created":"0001-01-01T00:00:00Z","history":\[\{"created":/);
    // Each further signature adds its history entry and diff id.
    assert.equal(signatureConfig([DIGEST, DIGEST]).length, 342);
  });

  it('verifies a signature made by openssl (as the cosign docs verify with openssl), and refuses it altered', () => {
    const dir = tempDir('rfa-sig-');
    execFileSync('openssl', ['ecparam', '-genkey', '-name', 'prime256v1', '-noout', '-out', join(dir, 'key.pem')]);
    execFileSync('openssl', ['ec', '-in', join(dir, 'key.pem'), '-pubout', '-out', join(dir, 'key.pub')], {
      stdio: 'ignore',
    });
    const payload = simpleSigningPayload({ identity: cosignIdentity(repo), digest: DIGEST });
    writeFileSync(join(dir, 'payload.json'), payload);
    const der = execFileSync('openssl', ['dgst', '-sha256', '-sign', join(dir, 'key.pem'), join(dir, 'payload.json')]);
    const problems: string[] = [];
    const [rule] = loadVerifyRules(
      [{ pattern: 'registry.lab.example/fleet/*', keys: [join(dir, 'key.pub')] }],
      problems,
    );
    assert.deepEqual(problems, []);
    const layer = { payload, signature: der.toString('base64') };
    const ok = verifySignatures([layer], { digest: DIGEST, repository: repo }, rule!.keys);
    assert.ok(ok.ok);
    const altered = Buffer.from(payload.toString().replace('ros-foxy', 'ros-foxz'));
    const bad = verifySignatures([{ ...layer, payload: altered }], { digest: DIGEST, repository: repo }, rule!.keys);
    assert.equal(bad.ok ? 'ok' : bad.reason, 'unknown_key');
    // And the other way: what the agent signs verifies with openssl.
    const ours = signPayload(payload, createPrivateKey(execFileSync('cat', [join(dir, 'key.pem')])));
    writeFileSync(join(dir, 'sig.der'), Buffer.from(ours, 'base64'));
    const out = execFileSync('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      join(dir, 'key.pub'),
      '-signature',
      join(dir, 'sig.der'),
      join(dir, 'payload.json'),
    ]);
    assert.match(out.toString(), /Verified OK/);
  });

  it('answers each refusal with its reason', () => {
    const fleet = pair();
    const stranger = pair();
    const want = { digest: DIGEST, repository: repo };
    const reason = (layers: Parameters<typeof verifySignatures>[0]) => {
      const v = verifySignatures(layers, want, [fleet.trusted]);
      return v.ok ? 'ok' : v.reason;
    };
    assert.equal(reason([signed(fleet.priv)]), 'ok');
    assert.equal(reason([]), 'no_signature');
    assert.equal(reason([signed(stranger.priv)]), 'unknown_key');
    // A trusted key named, the bytes changed after signing: a broken signature, not a stranger's.
    const hinted = signed(fleet.priv, { hint: fleet.trusted.id });
    assert.equal(reason([hinted]), 'ok');
    assert.equal(
      reason([{ ...hinted, payload: Buffer.from(hinted.payload.toString().replace(DIGEST.slice(-4), 'ffff')) }]),
      'bad_signature',
    );
    assert.equal(reason([{ ...hinted, signature: 'not base64!' }]), 'bad_signature');
    assert.equal(reason([signed(fleet.priv, { digest: `sha256:${'0'.repeat(64)}` })]), 'digest_mismatch');
    assert.equal(reason([signed(fleet.priv, { identity: 'registry.lab.example/fleet/other' })]), 'wrong_repository');
    // docker-reference is compared normalised: a tag on it, or Docker Hub's two names, change nothing.
    assert.equal(reason([signed(fleet.priv, { identity: 'registry.lab.example/fleet/ros-foxy:anything' })]), 'ok');
    const hub = parseImageReference('yahboomtechnology/ros-foxy:3.3.9');
    const hubSig = signed(fleet.priv, { identity: 'docker.io/yahboomtechnology/ros-foxy' });
    assert.ok(verifySignatures([hubSig], { digest: DIGEST, repository: hub }, [fleet.trusted]).ok);
    // Any one good signature among others is enough; the most telling refusal is reported.
    assert.equal(reason([signed(stranger.priv), signed(fleet.priv)]), 'ok');
    assert.equal(
      reason([signed(stranger.priv), signed(fleet.priv, { digest: `sha256:${'0'.repeat(64)}` })]),
      'digest_mismatch',
    );
    // The payload is believed only once its signature checks out: a stranger's payload naming the
    // right digest is still a stranger's.
    assert.equal(reason([signed(stranger.priv, { hint: fleet.trusted.id })]), 'bad_signature');
  });

  it('refuses key files that are not ECDSA P-256 public keys', () => {
    const dir = tempDir('rfa-sigkeys-');
    const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' });
    writeFileSync(join(dir, 'ed.pub'), ed);
    writeFileSync(join(dir, 'junk.pub'), 'hello');
    const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
    writeFileSync(join(dir, 'ok.pub'), p256.export({ type: 'spki', format: 'pem' }));
    const problems: string[] = [];
    const rules = loadVerifyRules(
      [
        {
          pattern: 'x/*',
          keys: [join(dir, 'ed.pub'), join(dir, 'junk.pub'), join(dir, 'none.pub'), join(dir, 'ok.pub')],
        },
      ],
      problems,
    );
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.match(problems.join('\n'), /keys\[0\].*not an ECDSA P-256/);
    assert.match(problems.join('\n'), /keys\[2\].*ENOENT/);
    assert.equal(rules[0]!.keys.length, 1);
    assert.equal(rules[0]!.keys[0]!.id, keyId(createPublicKey(p256.export({ type: 'spki', format: 'pem' }))));
  });
});
