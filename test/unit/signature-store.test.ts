import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AgentError } from '../../agent/core/errors.js';
import { createLogger } from '../../agent/core/logger.js';
import { parseImageReference } from '../../agent/core/image-reference.js';
import {
  SIGNATURE_ANNOTATION,
  SIMPLE_SIGNING_MEDIA_TYPE,
  keyId,
  signatureTag,
} from '../../agent/core/image-signature.js';
import { ImageVerifier } from '../../agent/images/image-verifier.js';
import { MANIFEST_MAX_BYTES, RegistryClient } from '../../agent/images/registry-client.js';
import { LIMITS, SignatureStore } from '../../agent/images/signature-store.js';
import { tempDir } from '../helpers/temp.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A registry that answers from a table of paths; a function body is streamed as it likes. */
async function fakeRegistry(
  routes: Record<string, Buffer | ((res: import('node:http').ServerResponse) => void)>,
): Promise<{ server: Server; host: string }> {
  const server = createServer((req, res) => {
    const route = routes[req.url ?? ''];
    if (route === undefined) {
      res.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      return;
    }
    if (typeof route === 'function') return route(res);
    res
      .writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': route.length })
      .end(route);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, host: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('signature store: what a registry the robot does not trust can make it read', () => {
  const manifest = Buffer.from('{"schemaVersion":2,"layers":[]}');
  const digest = sha(manifest);
  let server: Server | undefined;
  afterEach(() => server?.close());

  it('a signature manifest larger than the cap (declared or streamed) is registry_error, not read whole', async () => {
    for (const declared of [true, false]) {
      const r = await fakeRegistry({
        '/v2/fleet/ros/manifests/1': manifest,
        [`/v2/fleet/ros/manifests/${signatureTag(digest)}`]: (res) => {
          res.writeHead(200, declared ? { 'content-length': String(64 << 20) } : {});
          // Streamed without end: the reader must stop at the cap, not wait for 64 MiB.
          const chunk = Buffer.alloc(64 * 1024, 0x20);
          const timer = setInterval(() => res.write(chunk), 1);
          res.on('close', () => clearInterval(timer));
        },
      });
      server = r.server;
      const store = new SignatureStore(new RegistryClient({ registries: {}, passwords: {}, timeoutMs: 5000 }));
      const err = await store.find(parseImageReference(`${r.host}/fleet/ros:1`)).catch((e: unknown) => e);
      assert.ok(err instanceof AgentError, String(err));
      assert.equal(err.code, 'registry_error');
      assert.match(err.message, new RegExp(`larger than the ${LIMITS.signatureManifestBytes} bytes`));
      r.server.closeAllConnections();
      r.server.close();
    }
  });

  it('an image manifest streamed without end (the pull plan, update checks) is registry_error at the cap', async () => {
    const r = await fakeRegistry({
      '/v2/fleet/ros/manifests/1': (res) => {
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
        // Before the fix response.json() read all of it: a hostile registry could fill the robot's memory.
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const timer = setInterval(() => res.write(chunk), 1);
        res.on('close', () => clearInterval(timer));
      },
    });
    server = r.server;
    const client = new RegistryClient({ registries: {}, passwords: {}, timeoutMs: 20_000 });
    const err = await client
      .manifest(parseImageReference(`${r.host}/fleet/ros:1`), { os: 'linux', architecture: 'amd64' })
      .catch((e: unknown) => e);
    assert.ok(err instanceof AgentError, String(err));
    assert.equal(err.code, 'registry_error');
    assert.match(err.message, new RegExp(`larger than the ${MANIFEST_MAX_BYTES} bytes`));
    r.server.closeAllConnections();
  });

  it('a payload whose bytes are not the ones its descriptor names is ignored: the image is refused', async () => {
    const payload = Buffer.from('{"critical":{}}');
    const sig = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        layers: [
          {
            mediaType: SIMPLE_SIGNING_MEDIA_TYPE,
            size: payload.length,
            digest: sha(Buffer.from('other')),
            annotations: { [SIGNATURE_ANNOTATION]: 'MEUC' },
          },
        ],
      }),
    );
    const r = await fakeRegistry({
      '/v2/fleet/ros/manifests/1': manifest,
      [`/v2/fleet/ros/manifests/${signatureTag(digest)}`]: sig,
      [`/v2/fleet/ros/blobs/${sha(Buffer.from('other'))}`]: payload,
    });
    server = r.server;
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
    const verifier = new ImageVerifier({
      rules: [{ pattern: `${r.host}/fleet/*:v1`, keys: [{ id: keyId(key), file: 'fleet.pub', key }] }],
      signatures: new SignatureStore(new RegistryClient({ registries: {}, passwords: {} })),
      stateDir: tempDir('rfa-verifier-'),
      logger: createLogger({ level: 'error', write: () => undefined }),
    });
    const err = await verifier.verify(parseImageReference(`${r.host}/fleet/ros:1`)).catch((e: unknown) => e);
    assert.ok(err instanceof AgentError, String(err));
    assert.equal(err.code, 'unsigned_image');
    assert.match(err.message, /\(no_signature: the signature manifest holds no cosign signature\)/);
  });

  it('a rule covers every tag and digest of its repositories (the tag in its pattern is ignored), and nothing else', () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
    const verifier = new ImageVerifier({
      rules: [{ pattern: 'registry.lab:5000/fleet/*:3.3.9', keys: [{ id: keyId(key), file: 'fleet.pub', key }] }],
      signatures: new SignatureStore(new RegistryClient({ registries: {}, passwords: {} })),
      stateDir: tempDir('rfa-verifier-'),
      logger: createLogger({ level: 'error', write: () => undefined }),
    });
    const covered = (image: string) => verifier.applies(parseImageReference(image));
    assert.ok(covered('registry.lab:5000/fleet/ros:3.3.9'));
    assert.ok(covered('registry.lab:5000/fleet/ros:3.4.0'));
    assert.ok(covered(`registry.lab:5000/fleet/ros@sha256:${'a'.repeat(64)}`));
    assert.ok(!covered('registry.lab:5000/fleet/deeper/ros:3.3.9'));
    assert.ok(!covered('fleet/ros:3.3.9'));
  });
});
