import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { WebSocket } from 'ws';
import type { ActionRunner } from '../../agent/fleet/dashboard/actions.js';
import type { FleetModel } from '../../agent/fleet/dashboard/fleet-model.js';
import type { RequestSender } from '../../agent/fleet/dashboard/send-request.js';
import { createDashboardServer } from '../../agent/fleet/dashboard/http-server.js';
import { parseListen } from '../../agent/fleet/dashboard/serve.js';
import { main } from '../../agent/fleet/fleet-cli.js';
import { CLOSE, SocketHub } from '../../agent/fleet/dashboard/socket-hub.js';
import { loadTokens, roleOf } from '../../agent/fleet/dashboard/tokens.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';

/** A WebSocket as the hub sees it: what it sent, how it was closed, how much it has not sent yet. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  sent: string[] = [];
  closedWith: number | null = null;
  terminated = false;
  send(data: string, cb?: (err?: Error) => void): void {
    this.sent.push(data);
    cb?.();
  }
  close(code: number): void {
    this.closedWith = code;
    this.readyState = 3;
  }
  terminate(): void {
    this.terminated = true;
    this.readyState = 3;
  }
  ping(): void {}
}

function hub(o: { maxSockets?: number; maxBufferedBytes?: number } = {}) {
  const model = Object.assign(new EventEmitter(), { robots: new Map(), overflow: 0, unwatch: async () => undefined });
  const actions = { onEvent: () => undefined, start: () => undefined } as unknown as ActionRunner;
  const h = new SocketHub(model as unknown as FleetModel, actions, {} as RequestSender, {
    base: 'fleet',
    staleAfterMs: 180_000,
    timeoutMs: 1000,
    flushMs: 5,
    ...o,
  });
  return { h, model };
}

describe('dashboard server parts (pure)', () => {
  it('drops a page that does not keep up instead of buffering for it without end', async () => {
    const { h, model } = hub({ maxBufferedBytes: 1024 });
    const ws = new FakeSocket();
    h.attach(ws as unknown as WebSocket, 'read');
    await waitUntil(() => ws.sent.some((s) => s.includes('"replayed"')), 1000, 'the replay');
    const robot = { robot: 'x3-1', online: true, state: null };
    model.robots.set('x3-1', robot);
    model.emit('robot', robot);
    await waitUntil(() => ws.sent.some((s) => s.includes('"x3-1"')), 1000, 'the change');
    // The page stops reading: its unsent bytes pile up past the limit.
    ws.bufferedAmount = 4096;
    model.emit('robot', robot);
    await waitUntil(() => ws.terminated, 1000, 'the drop');
    assert.equal(ws.closedWith, CLOSE.tooSlow);
    assert.equal(h.size, 0);
    h.close();
  });

  it('refuses a page past the limit of open pages (1013, try later)', () => {
    const { h } = hub({ maxSockets: 1 });
    const a = new FakeSocket();
    const b = new FakeSocket();
    h.attach(a as unknown as WebSocket, 'read');
    h.attach(b as unknown as WebSocket, 'read');
    assert.equal(b.closedWith, CLOSE.tooMany);
    assert.equal(a.closedWith, null);
    h.close();
  });

  it('keeps an eighth of the pages for operators: read-only pages cannot lock them out', () => {
    const { h } = hub({ maxSockets: 8 });
    const readers = Array.from({ length: 8 }, () => new FakeSocket());
    for (const r of readers) h.attach(r as unknown as WebSocket, 'read');
    assert.deepEqual(
      readers.map((r) => r.closedWith),
      [null, null, null, null, null, null, null, CLOSE.tooMany],
    );
    const operator = new FakeSocket();
    h.attach(operator as unknown as WebSocket, 'operator');
    assert.equal(operator.closedWith, null);
    const another = new FakeSocket();
    h.attach(another as unknown as WebSocket, 'operator');
    assert.equal(another.closedWith, CLOSE.tooMany);
    h.close();
  });

  it('a read-only page cannot act: forbidden, whatever it sends', async () => {
    const { h } = hub();
    const ws = new FakeSocket();
    let started = 0;
    (h as unknown as { actions: { start: () => void } }).actions.start = () => (started += 1);
    h.attach(ws as unknown as WebSocket, 'read');
    ws.emit(
      'message',
      Buffer.from(JSON.stringify({ t: 'act', id: 'a', command: 'stop', robots: ['x'], args: { name: 'ros' } })),
      false,
    );
    ws.emit('message', Buffer.from('not json'), false);
    const errors = ws.sent.map((s) => JSON.parse(s) as { t: string; code?: string }).filter((m) => m.t === 'error');
    assert.deepEqual(
      errors.map((e) => e.code),
      ['forbidden', 'bad_message'],
    );
    assert.equal(started, 0);
    h.close();
  });

  it('a robot page the broker refuses to subscribe to is answered with an error, nothing escapes', async () => {
    const { h, model } = hub();
    Object.assign(model, { watch: async () => Promise.reject(new Error('client disconnecting')) });
    const ws = new FakeSocket();
    h.attach(ws as unknown as WebSocket, 'read');
    ws.emit('message', Buffer.from(JSON.stringify({ t: 'watch', robot: 'x3-1' })), false);
    const error = await waitUntil(
      () => ws.sent.map((m) => JSON.parse(m) as { t: string; code?: string }).find((m) => m.t === 'error'),
      1000,
      'the error',
    );
    assert.equal(error.code, 'broker_unavailable');
    h.close();
  });

  it('robot pages switched quickly and a page that goes leave no robot watched', async () => {
    const { h, model } = hub();
    const refs = new Map<string, number>();
    const later = () => new Promise((r) => setTimeout(r, 5));
    Object.assign(model, {
      watch: async (robot: string) => {
        await later();
        refs.set(robot, (refs.get(robot) ?? 0) + 1);
        return { refs: 1, sections: {}, events: [] };
      },
      unwatch: async (robot: string) => {
        await later();
        refs.set(robot, (refs.get(robot) ?? 0) - 1);
      },
    });
    const ws = new FakeSocket();
    h.attach(ws as unknown as WebSocket, 'read');
    for (const robot of ['a', 'b', 'a', 'c', 'c', null, 'b']) {
      ws.emit('message', Buffer.from(JSON.stringify({ t: 'watch', robot })), false);
    }
    // Only the robot asked for last stays watched, once.
    await waitUntil(() => refs.get('a') === 0 && refs.get('c') === 0 && refs.get('b') === 1, 2000, 'b alone watched');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(Object.fromEntries(refs), { a: 0, b: 1, c: 0 });
    ws.emit('close');
    await waitUntil(() => refs.get('b') === 0, 2000, 'b given back');
    h.close();
  });

  it('tokens: made once (0600) and kept; each file gives its role; the same token for both is refused', () => {
    const dir = tempDir('rfa-tok-');
    const first = loadTokens({ stateDir: join(dir, 'state') });
    assert.equal(first.generated, true);
    assert.equal(statSync(first.files.operator).mode & 0o777, 0o600);
    const again = loadTokens({ stateDir: join(dir, 'state') });
    assert.equal(again.generated, false);
    assert.equal(again.operator, first.operator);
    assert.equal(roleOf(first.operator, again), 'operator');
    assert.equal(roleOf(first.read, again), 'read');
    assert.equal(roleOf(`${first.read}x`, again), null);
    assert.equal(roleOf('', again), null);
    const same = join(dir, 'same.token');
    writeFileSync(same, 'the-same-token-for-both-roles\n');
    assert.throws(() => loadTokens({ stateDir: dir, readFile: same, operatorFile: same }), { code: 'token_file' });
    const short = join(dir, 'short.token');
    writeFileSync(short, 'abc\n');
    assert.throws(() => loadTokens({ stateDir: dir, readFile: short }), /16 to 512/);
    assert.equal(readFileSync(first.files.read, 'utf8').trim(), first.read);
  });

  it('robot-fleet serve: a bad --listen or --stale is a usage error (exit 2) before any connection', async () => {
    for (const bad of [
      ['--listen', 'nope'],
      ['--stale', 'soon'],
    ]) {
      const said: string[] = [];
      const code = await main(
        ['--broker', 'mqtt://127.0.0.1:9', 'serve', ...bad],
        {},
        () => undefined,
        (s) => void said.push(s),
      );
      assert.equal(code, 2, said.join('\n'));
      assert.match(said[0]!, /--listen takes HOST:PORT|--stale must be a number/);
    }
  });

  it('--listen takes HOST:PORT, loopback by default', () => {
    assert.deepEqual(parseListen(undefined), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListen('0.0.0.0:9000'), { host: '0.0.0.0', port: 9000 });
    assert.deepEqual(parseListen('[::1]:8080'), { host: '::1', port: 8080 });
    assert.throws(() => parseListen('8080'), /HOST:PORT/);
    assert.throws(() => parseListen('host:99999'), /HOST:PORT/);
  });
  it('an upgrade whose URL no parser takes is refused without a token and the server keeps serving', async () => {
    const attached: unknown[] = [];
    const server = createDashboardServer({
      pageDir: tempDir('dash-page'),
      hub: { attach: (ws: unknown) => attached.push(ws) } as never,
      tokens: { read: 'r'.repeat(24), operator: 'o'.repeat(24) },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const ask = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () => s.write(request));
        let text = '';
        s.on('data', (d) => (text += d.toString()));
        s.on('end', () => resolve(text.split('\r\n')[0]!));
        s.on('error', reject);
      });
    try {
      // Before the fix `new URL` threw out of the 'upgrade' listener: an uncaught exception, serve gone.
      const answer = await ask(
        'GET http://[ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      assert.equal(answer, 'HTTP/1.1 404 Not Found');
      assert.equal(await ask('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 'HTTP/1.1 401 Unauthorized');
      assert.equal(attached.length, 0);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
