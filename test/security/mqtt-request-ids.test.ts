import assert from 'node:assert/strict';
import { defineCommand, type CommandDefinition } from '../../agent/commands/command.js';
import { stubCommand } from '../helpers/stub-command.js';
import { CommandRouter, MAX_REMEMBERED_ANSWERS, MAX_REMEMBERED_BYTES } from '../../agent/commands/command-router.js';
import { silentLogger } from '../../agent/core/logger.js';
import type { MqttLink, OutboundMessage } from '../../agent/mqtt/mqtt-link.js';
import { buildTopics, type CommandResponse } from '../../agent/mqtt/topics.js';
import { EventBus } from '../../agent/state/event-bus.js';

/** The router alone, with a link that records what it would publish: no broker needed. */
class RecordingLink {
  readonly sent: OutboundMessage[] = [];
  send(message: OutboundMessage): void {
    this.sent.push(message);
  }
  onMessage(): () => void {
    return () => undefined;
  }
  answers(topic: string): CommandResponse[] {
    return this.sent.filter((m) => m.topic === topic).map((m) => JSON.parse(String(m.payload)) as CommandResponse);
  }
}

/** A promise a test settles by hand: a command that runs until the test says it is done. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const base = 'fleet/r1';
const topics = buildTopics('fleet', 'r1');

function router(
  commands: CommandDefinition[],
  lanes?: { quick?: number; long?: number },
): { router: CommandRouter; link: RecordingLink } {
  const link = new RecordingLink();
  const fake = link as unknown as MqttLink;
  const r = new CommandRouter({
    link: fake,
    topics,
    bus: new EventBus(),
    logger: silentLogger,
    commands,
    ...(lanes ? { lanes } : {}),
  });
  return { router: r, link };
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const errorCode = (r: CommandResponse | undefined) => (r && !r.ok ? r.error.code : undefined);

describe('command channel: request ids, redeliveries and lanes (issues 12.3, 19.3)', () => {
  it('a ping and a stop with the same id are two requests: the stop runs and gets its own answer', async () => {
    const stopped: string[] = [];
    const { router: r } = router([
      defineCommand({ name: 'ping', run: async () => ({ pong: true, ts: 'now' }) }),
      stubCommand({
        name: 'stop',
        run: async ({ name }) => (stopped.push(name), { name, stopped: true }),
      }),
    ]);
    const pong = await r.handle('ping', json({ id: 'X' }));
    const stop = await r.handle('stop', json({ id: 'X', name: 'ros' }));
    assert.equal(pong?.ok, true);
    assert.deepEqual(stop, { id: 'X', ok: true, result: { name: 'ros', stopped: true } });
    assert.deepEqual(stopped, ['ros']);
  });

  it('a true redelivery (same command, id and payload) is answered the same without a second run', async () => {
    let runs = 0;
    const { router: r, link } = router([stubCommand({ name: 'stop', run: async () => ({ run: ++runs }) })]);
    const first = await r.handle('stop', json({ id: 'a', name: 'ros' }));
    const again = await r.handle('stop', json({ id: 'a', name: 'ros' }));
    assert.deepEqual(again, first);
    assert.equal(runs, 1);
    assert.equal(link.answers(`${base}/response/stop`).length, 2, 'each request got an answer');
  });

  it('the same id with another payload is refused with duplicate_id, once answered and while running', async () => {
    const hold = gate();
    const { router: r, link } = router([
      stubCommand({
        name: 'stop',
        run: async ({ name }) => (await hold.promise, { name }),
      }),
    ]);
    const running = r.handle('stop', json({ id: 'b', name: 'ros' }));
    assert.equal(errorCode(await r.handle('stop', json({ id: 'b', name: 'other' }))), 'duplicate_id');
    hold.open();
    assert.deepEqual(await running, { id: 'b', ok: true, result: { name: 'ros' } });
    assert.equal(errorCode(await r.handle('stop', json({ id: 'b', name: 'other' }))), 'duplicate_id');
    const codes = link.answers(`${base}/response/stop`).map((a) => (a.ok ? 'ok' : a.error.code));
    assert.deepEqual(codes, ['duplicate_id', 'ok', 'duplicate_id']);
  });

  it('a redelivery of a request still running is answered when it finishes, with the same answer', async () => {
    const hold = gate();
    let runs = 0;
    const { router: r, link } = router([
      stubCommand({
        name: 'restart',
        run: async () => (runs++, await hold.promise, { done: true }),
      }),
    ]);
    const first = r.handle('restart', json({ id: 'c', name: 'ros' }));
    const second = await r.handle('restart', json({ id: 'c', name: 'ros' }));
    assert.equal(second, undefined, 'waits for the first run');
    assert.equal(link.answers(`${base}/response/restart`).length, 0);
    hold.open();
    await first;
    const answers = link.answers(`${base}/response/restart`);
    assert.equal(answers.length, 2, 'both requests are answered');
    assert.deepEqual(answers[0], answers[1]);
    assert.equal(runs, 1);
  });

  it('the memory of answers stays bounded in count and bytes', async () => {
    const big = 'x'.repeat(60_000);
    const { router: r } = router([defineCommand({ name: 'ping', run: async () => ({ pong: true, ts: big }) })]);
    for (let i = 0; i < MAX_REMEMBERED_ANSWERS + 50; i += 1) await r.handle('ping', json({ id: `m${i}` }));
    assert.ok(r.stats.remembered <= MAX_REMEMBERED_ANSWERS);
    assert.ok(r.stats.rememberedBytes <= MAX_REMEMBERED_BYTES, `${r.stats.rememberedBytes} bytes remembered`);
  });

  it('long commands fill their own lane: beyond it they are busy, and quick commands still answer', async () => {
    const hold = gate();
    const { router: r } = router([
      defineCommand({ name: 'ping', run: async () => ({ pong: true, ts: 'now' }) }),
      defineCommand({ name: 'containers', run: async () => [] }),
      stubCommand({
        name: 'plan',
        lane: 'long',
        run: async () => (await hold.promise, {}),
      }),
    ]);
    const plans = Array.from({ length: 4 }, (_, i) => r.handle('plan', json({ id: `p${i}`, image: 'x:1' })));
    // Eight: what used to take every slot of the one shared budget.
    for (let i = 4; i < 8; i += 1) {
      assert.equal(errorCode(await r.handle('plan', json({ id: `p${i}`, image: 'x:1' }))), 'busy');
    }
    assert.equal(r.stats.inFlight.long, 4);
    assert.equal((await r.handle('ping', json({ id: 'q1' })))?.ok, true);
    assert.equal((await r.handle('containers', json({ id: 'q2' })))?.ok, true);
    hold.open();
    await Promise.all(plans);
    assert.equal(r.stats.inFlight.long, 0);
  });

  it('quick commands beyond their lane are answered busy, never queued', async () => {
    const hold = gate();
    const { router: r } = router([defineCommand({ name: 'containers', run: async () => (await hold.promise, []) })], {
      quick: 2,
    });
    const held = [r.handle('containers', json({ id: 'h1' })), r.handle('containers', json({ id: 'h2' }))];
    assert.equal(errorCode(await r.handle('containers', json({ id: 'h3' }))), 'busy');
    hold.open();
    await Promise.all(held);
  });
});

describe('command channel: MQTT 5 response topics (issue 12.2)', () => {
  const bad: Array<[string, string]> = [
    ['a multi-level wildcard', 'x/#'],
    ['a single-level wildcard', 'a/+/b'],
    ['an empty topic', ''],
    ['a NUL', 'dash\u0000board'],
    ['invalid UTF-8 (decoded as U+FFFD)', 'dash\ufffdboard'],
    ['a lone surrogate', 'dash\ud800board'],
    ['a control character', 'dash\u0007board'],
    ['a $ topic', '$SYS/broker'],
    ['over 256 bytes', `replies/${'r'.repeat(300)}`],
    ['the robot desired state', `${base}/desired`],
    ['the robot availability', `${base}/availability`],
    ['the robot state', `${base}/state`],
    ['the robot request space', `${base}/request/stop`],
    ["another robot's desired state", 'fleet/r2/desired'],
  ];
  for (const [what, responseTopic] of bad) {
    it(`a response topic with ${what} is answered bad_response_topic on <b>/response/<command>, and nothing runs`, async () => {
      let runs = 0;
      const { router: r, link } = router([
        defineCommand({ name: 'ping', run: async () => (runs++, { pong: true, ts: 'now' }) }),
      ]);
      const answer = await r.handle('ping', json({ id: 'rt' }), {
        properties: { responseTopic, correlationData: Buffer.from('c') },
      });
      assert.equal(errorCode(answer), 'bad_response_topic');
      assert.equal(answer?.id, 'rt');
      assert.equal(runs, 0);
      assert.deepEqual(
        link.sent.map((m) => m.topic),
        [`${base}/response/ping`],
        'published nowhere else',
      );
    });
  }

  it('correlation data over 256 bytes is refused with bad_correlation_data', async () => {
    const { router: r, link } = router([defineCommand({ name: 'ping', run: async () => ({ pong: true, ts: 'now' }) })]);
    const answer = await r.handle('ping', json({ id: 'cd' }), {
      properties: { responseTopic: 'dash/replies/1', correlationData: Buffer.alloc(257) },
    });
    assert.equal(errorCode(answer), 'bad_correlation_data');
    assert.deepEqual(
      link.sent.map((m) => m.topic),
      [`${base}/response/ping`],
    );
  });

  it('a good response topic gets the answer too, with its correlation data', async () => {
    const { router: r, link } = router([defineCommand({ name: 'ping', run: async () => ({ pong: true, ts: 'now' }) })]);
    const correlation = Buffer.alloc(256, 7);
    await r.handle('ping', json({ id: 'ok' }), {
      properties: { responseTopic: 'dashboard/replies/ü/1', correlationData: correlation },
    });
    assert.deepEqual(
      link.sent.map((m) => m.topic),
      [`${base}/response/ping`, 'dashboard/replies/ü/1'],
    );
    assert.deepEqual(link.sent[1]!.properties?.correlationData, correlation);
  });
});
