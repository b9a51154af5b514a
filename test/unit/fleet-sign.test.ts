import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../agent/fleet/fleet-cli.js';
import { tempDir } from '../helpers/temp.js';

/** robot-fleet sign through the CLI's own entry: its options, its refusals, its exit codes. */
describe('robot-fleet sign (no registry needed)', () => {
  async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      argv,
      {},
      (l) => void out.push(l),
      (l) => void err.push(l),
    );
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  it('--keygen writes a P-256 pair (private 0600) and never overwrites a key', async () => {
    const dir = tempDir('rfa-keygen-');
    const made = await run('sign', '--keygen', join(dir, 'fleet.key'));
    assert.equal(made.code, 0, made.err);
    assert.equal(statSync(join(dir, 'fleet.key')).mode & 0o777, 0o600);
    assert.match(made.out, /fleet\.key\.pub/);
    const again = await run('sign', '--keygen', join(dir, 'fleet.key'));
    assert.equal(again.code, 1);
    assert.match(again.err, /EEXIST/);
  });

  it('its --key is the signing key, not the broker TLS --key; wrong keys are usage errors (exit 2)', async () => {
    const dir = tempDir('rfa-signkey-');
    assert.equal((await run('sign', 'registry.lab:5000/fleet/ros:1')).code, 2);
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' });
    writeFileSync(join(dir, 'ed.key'), ed);
    const edRun = await run('sign', 'registry.lab:5000/fleet/ros:1', '--key', join(dir, 'ed.key'));
    assert.equal(edRun.code, 2);
    assert.match(edRun.err, /not an ECDSA P-256 key/);
    writeFileSync(
      join(dir, 'cosign.key'),
      '-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nx\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n',
    );
    const cosignRun = await run('sign', 'registry.lab:5000/fleet/ros:1', '--key', join(dir, 'cosign.key'));
    assert.equal(cosignRun.code, 2);
    assert.match(cosignRun.err, /cosign's encrypted key format/);
    const unknown = await run('sign', 'registry.lab:5000/fleet/ros:1', '--key', join(dir, 'ed.key'), '--bogus');
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /unknown option --bogus/);
    // The same option rules as every robot-fleet command: the nearest name, and --name=value.
    const typo = await run('sign', 'registry.lab:5000/fleet/ros:1', '--key', join(dir, 'ed.key'), '--mirrr', 'x');
    assert.equal(typo.code, 2);
    assert.match(typo.err, /unknown option --mirrr \(did you mean --mirror\?\)/);
    const joined = await run('sign', 'registry.lab:5000/fleet/ros:1', `--key=${join(dir, 'cosign.key')}`);
    assert.match(joined.err, /cosign's encrypted key format/);
  });

  it('a registry that cannot be reached is exit 1 with the reason', async () => {
    const dir = tempDir('rfa-signreach-');
    assert.equal((await run('sign', '--keygen', join(dir, 'k'))).code, 0);
    // Port 9 (discard) on loopback: refused at once.
    const r = await run('sign', '127.0.0.1:9/fleet/ros:1', '--key', join(dir, 'k'));
    assert.equal(r.code, 1);
    assert.match(r.err, /cannot reach http:\/\/127\.0\.0\.1:9/);
  });
});
