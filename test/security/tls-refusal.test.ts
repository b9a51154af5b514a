import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { dirname, join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { ConfigError, loadConfig } from '../../agent/config/load-config.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { freePort } from '../rig/net.js';
import { needRig } from '../setup.js';

/**
 * Attack family "TLS/mTLS refusal": a robot configured for TLS must refuse a broker it cannot
 * verify, and must never say anything in plaintext instead. Every server here records what it
 * received: a refused handshake leaves no MQTT byte behind.
 */
interface Recorder {
  port: number;
  /** TCP connections accepted. */
  connections: number;
  /** The first byte of each connection (0x16: a TLS handshake; 0x10: an MQTT CONNECT). */
  firstBytes: number[];
  /** Bytes that arrived over an established TLS session (none may, when it is refused). */
  applicationBytes: number;
  /** TLS handshakes that failed (TLS recorder only). */
  refusedHandshakes: number;
  close(): Promise<void>;
}

async function tlsRecorder(options: {
  cert: string;
  key: string;
  ca?: string;
  requestCert?: boolean;
}): Promise<Recorder> {
  const port = await freePort();
  const server: TlsServer = createTlsServer({
    cert: readFileSync(options.cert),
    key: readFileSync(options.key),
    ...(options.ca ? { ca: readFileSync(options.ca) } : {}),
    requestCert: options.requestCert ?? false,
    rejectUnauthorized: false,
  });
  const recorder: Recorder = {
    port,
    connections: 0,
    firstBytes: [],
    applicationBytes: 0,
    refusedHandshakes: 0,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  // The raw socket's bytes go to the TLS layer; a connection that gets that far began a handshake.
  server.on('connection', () => (recorder.connections += 1));
  server.on('secureConnection', (socket) => {
    socket.on('data', (chunk: Buffer) => (recorder.applicationBytes += chunk.length));
    socket.on('error', () => undefined);
  });
  server.on('tlsClientError', () => (recorder.refusedHandshakes += 1));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return recorder;
}

async function plainRecorder(): Promise<Recorder> {
  const port = await freePort();
  const server: TcpServer = createTcpServer((socket) => {
    recorder.connections += 1;
    socket.once('data', (chunk: Buffer) => recorder.firstBytes.push(chunk[0]!));
    socket.on('data', (chunk: Buffer) => (recorder.applicationBytes += chunk.length));
    socket.on('error', () => undefined);
  });
  const recorder: Recorder = {
    port,
    connections: 0,
    firstBytes: [],
    applicationBytes: 0,
    refusedHandshakes: 0,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return recorder;
}

/** A server certificate the rig's CA signed, but for a host name the agent does not dial. */
function wrongHostCert(caPem: string): { cert: string; key: string } {
  const dir = tempDir('rfa-tls-');
  const caKey = join(dirname(caPem), 'ca.key');
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  run(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'wrong.key',
    '-out',
    'wrong.csr',
    '-subj',
    '/CN=wrong.example',
  );
  writeFileSync(join(dir, 'wrong.ext'), 'subjectAltName=DNS:wrong.example\nextendedKeyUsage=serverAuth\n');
  run(
    'x509',
    '-req',
    '-in',
    'wrong.csr',
    '-CA',
    caPem,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-out',
    'wrong.pem',
    '-days',
    '3',
    '-extfile',
    'wrong.ext',
  );
  return { cert: join(dir, 'wrong.pem'), key: join(dir, 'wrong.key') };
}

describe('security: TLS and mutual TLS refusal', function () {
  this.timeout(60_000);
  let subject: AgentUnderTest | undefined;
  let recorder: Recorder | undefined;

  afterEach(async () => {
    await subject?.stop();
    await recorder?.close();
    subject = undefined;
    recorder = undefined;
  });

  const refusedTwice = async (s: AgentUnderTest, r: Recorder, pattern: RegExp) => {
    // Two attempts: the retry after a refusal is TLS again, not a plaintext second try.
    await waitUntil(
      () => r.refusedHandshakes >= 2 && s.logs.filter((l) => l.msg === 'broker connection error').length >= 2,
      20_000,
      'two refused handshakes',
    );
    assert.equal(s.agent.store.get().agent.mqtt.connected, false);
    assert.equal(r.applicationBytes, 0, 'MQTT bytes reached a broker the agent could not verify');
    const errors = s.logs.filter((l) => l.msg === 'broker connection error').map((l) => JSON.stringify(l.error));
    assert.ok(
      errors.some((e) => pattern.test(e)),
      `refusals: ${errors.join('\n')}`,
    );
  };

  it('refuses a broker whose certificate an untrusted CA signed', async function () {
    const rig = needRig(this);
    const c = rig.mqtt.certs;
    recorder = await tlsRecorder({ cert: c.serverCert, key: c.serverKey });
    subject = await startAgent({
      mqtt: {
        url: `mqtts://127.0.0.1:${recorder.port}`,
        ca: join(dirname(c.ca), 'stranger-ca.pem'),
        cert: c.clientCert,
        key: c.clientKey,
      },
    });
    await refusedTwice(subject, recorder, /certificate|self.signed|unable to (get|verify)/i);
  });

  it('refuses a broker whose certificate is for another host name, even from the trusted CA', async function () {
    const rig = needRig(this);
    const c = rig.mqtt.certs;
    const wrong = wrongHostCert(c.ca);
    recorder = await tlsRecorder({ cert: wrong.cert, key: wrong.key });
    subject = await startAgent({
      mqtt: { url: `mqtts://127.0.0.1:${recorder.port}`, ca: c.ca, cert: c.clientCert, key: c.clientKey },
    });
    await refusedTwice(subject, recorder, /altnames|hostname|ERR_TLS_CERT_ALTNAME_INVALID|does not match/i);
  });

  it('is refused by the rig broker without a client certificate where mutual TLS is required, and stays up', async function () {
    const rig = needRig(this);
    subject = await startAgent({ mqtt: { url: rig.mqtt.tlsUrl, ca: rig.mqtt.certs.ca } });
    const s = subject;
    await waitUntil(
      () => s.logs.filter((l) => l.msg === 'broker connection error').length >= 2,
      20_000,
      'two refused attempts',
    );
    assert.equal(s.agent.store.get().agent.mqtt.connected, false);
    assert.ok(s.agent.store.get().host.metrics !== undefined);
  });

  it('speaking to a plaintext listener on an mqtts:// address sends only TLS handshakes, never an MQTT CONNECT', async function () {
    const rig = needRig(this);
    recorder = await plainRecorder();
    const r = recorder;
    subject = await startAgent({ mqtt: { url: `mqtts://127.0.0.1:${r.port}`, ca: rig.mqtt.certs.ca } });
    await waitUntil(() => r.connections >= 2 && r.firstBytes.length >= 2, 20_000, 'two attempts');
    assert.ok(
      r.firstBytes.every((b) => b === 0x16),
      `first bytes ${r.firstBytes.map((b) => b.toString(16)).join(',')}`,
    );
    assert.equal(subject.agent.store.get().agent.mqtt.connected, false);
  });

  it('refuses a config with TLS files but a plaintext mqtt:// URL instead of connecting without TLS', () => {
    const dir = tempDir();
    for (const tls of [{ ca: join(dir, 'ca.pem') }, { cert: join(dir, 'c.pem'), key: join(dir, 'c.key') }]) {
      const file = writeYaml(dir, 'c.yaml', { mqtt: { url: 'mqtt://broker.example:1883', ...tls } });
      assert.throws(
        () => loadConfig({ file, env: {} }),
        (err: unknown) => err instanceof ConfigError && err.problems.some((p) => /^mqtt\.url: .*plaintext/.test(p)),
      );
    }
    const ok = writeYaml(dir, 'ok.yaml', { mqtt: { url: 'mqtts://broker.example:8883', ca: join(dir, 'ca.pem') } });
    assert.doesNotThrow(() => loadConfig({ file: ok, env: {} }));
  });
});
