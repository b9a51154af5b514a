import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = 'none' | 'error500' | 'stall-layers';

/**
 * A registry in front of a real one that counts the blob bytes it serves, and can misbehave on
 * purpose: answer 500 to everything, or serve manifests and configs but stop sending a layer
 * after its first kilobyte and keep the connection open (a Wi-Fi link that died quietly).
 */
export class FaultyRegistry {
  private constructor(
    private readonly server: Server,
    readonly host: string,
    private readonly held: Set<ServerResponse>,
    /** Blob bytes served, by digest. */
    readonly served: Map<string, number>,
  ) {}

  static async start(upstream: string, fault: Fault): Promise<FaultyRegistry> {
    const held = new Set<ServerResponse>();
    const served = new Map<string, number>();
    const server = createServer((req, res) => void handle(req, res, upstream, fault, held, served));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new FaultyRegistry(server, `127.0.0.1:${(server.address() as AddressInfo).port}`, held, served);
  }

  async stop(): Promise<void> {
    for (const res of this.held) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  upstream: string,
  fault: Fault,
  held: Set<ServerResponse>,
  served: Map<string, number>,
): Promise<void> {
  if (fault === 'error500') {
    res.writeHead(500, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNKNOWN","message":"boom"}]}');
    return;
  }
  const response = await fetch(`${upstream}${req.url}`, {
    method: req.method,
    headers: { accept: req.headers.accept ?? '*/*' },
  });
  const body = Buffer.from(await response.arrayBuffer());
  const headers: Record<string, string> = {};
  response.headers.forEach((value, key) => {
    if (key !== 'content-encoding' && key !== 'transfer-encoding') headers[key] = value;
  });
  const isLayer = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '') && body.length > 10_000;
  const blob = /\/blobs\/(sha256:[a-f0-9]{64})/.exec(req.url ?? '')?.[1];
  if (!isLayer || fault !== 'stall-layers') {
    if (blob && req.method === 'GET' && response.ok) served.set(blob, (served.get(blob) ?? 0) + body.length);
    res.writeHead(response.status, headers).end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  res.writeHead(200, headers);
  res.write(body.subarray(0, 1024));
  held.add(res);
  res.on('close', () => held.delete(res));
}
