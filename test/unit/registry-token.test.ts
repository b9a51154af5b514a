import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AgentError } from '../../agent/core/errors.js';
import { parseImageReference } from '../../agent/core/image-reference.js';
import { RegistryClient, TOKEN_MAX_BYTES } from '../../agent/images/registry-client.js';

/**
 * A registry that wants a bearer token, and a token service that answers as told: what the
 * robot reads from a token service is bounded and checked like what it reads from a registry.
 */
async function registryWithTokenService(
  token: (res: ServerResponse) => void,
): Promise<{ server: Server; host: string }> {
  let host = '';
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/token')) return token(res);
    res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="rig"` }).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, host };
}

async function manifestError(host: string): Promise<AgentError> {
  const client = new RegistryClient({ registries: {}, passwords: {}, timeoutMs: 20_000 });
  const err = await client
    .manifest(parseImageReference(`${host}/fleet/ros:1`), { os: 'linux', architecture: 'amd64' })
    .catch((e: unknown) => e);
  assert.ok(err instanceof AgentError, String(err));
  return err;
}

describe('registry client: the token service', () => {
  let server: Server | undefined;
  afterEach(() => {
    server?.closeAllConnections();
    server?.close();
  });

  it('an answer streamed without end is registry_unauthorized at the cap, not read whole', async () => {
    const r = await registryWithTokenService((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // Before the fix response.json() read all of it.
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const timer = setInterval(() => res.write(chunk), 1);
      res.on('close', () => clearInterval(timer));
    });
    server = r.server;
    const err = await manifestError(r.host);
    assert.equal(err.code, 'registry_unauthorized');
    assert.match(err.message, new RegExp(`sent more than ${TOKEN_MAX_BYTES} bytes`));
  });

  it('an answer that is not JSON, or a token that is not a string, is registry_unauthorized with a sentence', async () => {
    for (const [body, said] of [
      ['<html>', /not JSON/],
      ['{"token":{"a":1}}', /not a string/],
      ['{}', /without a token/],
    ] as const) {
      const r = await registryWithTokenService((res) => res.writeHead(200).end(body));
      server = r.server;
      const err = await manifestError(r.host);
      assert.equal(err.code, 'registry_unauthorized', `${body}: ${err.message}`);
      assert.match(err.message, said);
      server.close();
    }
  });
});
