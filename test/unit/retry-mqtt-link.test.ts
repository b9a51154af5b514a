import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { silentLogger } from '../../agent/core/logger.js';
import { MqttLink } from '../../agent/mqtt/mqtt-link.js';
import { sleep, waitUntil } from '../helpers/wait.js';

/**
 * A stand-in broker on loopback that counts connections: 'refuse' drops each at once (a broker
 * that is restarting, a firewall); 'kick' answers CONNACK and drops the session a moment later
 * (another client with the same id taking the session over, a broker that disconnects the robot
 * for its own reasons); 'accept' answers CONNACK and keeps the session.
 */
class FakeBroker {
  readonly connections: number[] = [];
  mode: 'refuse' | 'kick' | 'accept' = 'refuse';
  private readonly sockets = new Set<Socket>();
  private readonly server: Server = createServer((socket) => this.accept(socket));

  listen(): Promise<string> {
    return new Promise((resolve) => {
      this.server.listen(0, '127.0.0.1', () => {
        resolve(`mqtt://127.0.0.1:${(this.server.address() as AddressInfo).port}`);
      });
    });
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  since(at: number): number[] {
    return this.connections.filter((t) => t >= at);
  }

  private accept(socket: Socket): void {
    this.connections.push(Date.now());
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    if (this.mode === 'refuse') return void socket.destroy();
    socket.once('data', (data) => {
      // CONNECT (packet type 1): CONNACK, session not present, accepted (MQTT 3.1.1).
      if (data[0] !== 0x10) return void socket.destroy();
      socket.write(Buffer.from([0x20, 0x02, 0x00, 0x00]));
      if (this.mode === 'kick') setTimeout(() => socket.destroy(), 20);
      // 'accept': the session stays; what the client sends next is read and left unanswered.
      socket.on('data', () => undefined);
    });
  }
}

describe('retry: the MQTT link backs off', () => {
  let broker: FakeBroker | undefined;
  let link: MqttLink | undefined;
  afterEach(async () => {
    await link?.stop(200);
    await broker?.close();
    link = undefined;
    broker = undefined;
  });

  async function build(): Promise<MqttLink> {
    broker = new FakeBroker();
    const url = await broker.listen();
    link = new MqttLink({
      url,
      clientId: 'retry-test',
      protocolVersion: 4,
      keepaliveSeconds: 60,
      sessionExpirySeconds: 0,
      availabilityTopic: 'fleet/retry-test/availability',
      subscriptions: [],
      reconnect: { initialMs: 100, maxMs: 1000 },
      queueCapacity: 10,
      logger: silentLogger,
    });
    return link;
  }

  it('a broker that drops every connection is retried with growing delays up to the cap', async () => {
    const l = await build();
    const t0 = Date.now();
    await l.start();
    await sleep(2_000);
    // Delays 50-100, 100-200, 200-400, 400-800, then 500-1000 each: 4 to 7 connections in 2 s.
    const attempts = broker!.since(t0).filter((t) => t - t0 <= 2_000);
    assert.ok(attempts.length >= 3 && attempts.length <= 7, `${attempts.length} connections in 2 s`);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    const floors = [50, 100, 200, 400, 500, 500];
    // Timers fire late under load, never early (a few ms of clock granularity aside).
    gaps.forEach((gap, i) => assert.ok(gap >= floors[i]! - 5, `gap ${i + 1} was ${gap} ms, below ${floors[i]} ms`));
    assert.ok(
      gaps.every((g) => g <= 1000 + 300),
      `capped at 1 s: ${gaps.join(', ')}`,
    );
    assert.equal(l.connected, false);
  });

  it('a broker that accepts and drops the session at once is not a success: the backoff keeps growing', async () => {
    const l = await build();
    broker!.mode = 'kick';
    const t0 = Date.now();
    await l.start();
    await sleep(2_000);
    // Were each CONNACK a reason to start over, it would come back every 50-100 ms (20 or more).
    const attempts = broker!.since(t0).filter((t) => t - t0 <= 2_000);
    assert.ok(attempts.length >= 3 && attempts.length <= 7, `${attempts.length} connections in 2 s`);
  });

  it('a session that lasted starts the ladder over: the next loss is retried at the first step', async () => {
    const l = await build();
    const t0 = Date.now();
    await l.start();
    // Climb the ladder to its cap (500-1000 ms) ...
    await waitUntil(() => broker!.since(t0).length >= 5, 5_000, 'five refused connections');
    broker!.mode = 'accept';
    await waitUntil(() => l.connected, 3_000, 'connected');
    // ... stay connected longer than the longest delay (the cap, 1 s): that was a real session.
    await sleep(1_100);
    const lostAt = Date.now();
    // Nothing listens any more: the session ends, and each reconnect (counted by the link) is refused.
    await broker!.close();
    await waitUntil(() => !l.connected, 2_000, 'the link saw the loss');
    const reconnects = l.stats.reconnects;
    await waitUntil(() => l.stats.reconnects > reconnects, 3_000, 'a reconnect attempt');
    const first = Date.now() - lostAt;
    assert.ok(first < 400, `the first reconnect after a lasting session came after ${first} ms, not 50-100 ms`);
  });
});
