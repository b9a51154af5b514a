import assert from 'node:assert/strict';
import { sleep, waitUntil } from '../helpers/wait.js';
import { needRig } from '../setup.js';
import { rssOf, useSpawnedAgent } from './agent-on-rig.js';

describe('request floods', function () {
  this.timeout(60_000);
  const spawned = useSpawnedAgent();

  it('5,000 requests in a burst are each answered or refused busy; the agent lives, its memory bounded', async function () {
    const rig = needRig(this);
    const { agent, probe, base: b, pid } = await spawned.start(rig, 'flood');
    const rssBefore = rssOf(pid);
    probe.clear();

    // Quick and long commands mixed: pings, state, devices, and plans the allowlist refuses.
    const kinds: Array<[string, (n: number) => Record<string, unknown>]> = [
      ['ping', (n) => ({ id: `f${n}` })],
      ['devices', (n) => ({ id: `f${n}` })],
      ['plan', (n) => ({ id: `f${n}`, image: 'evil.example/x:1' })],
      ['ping', (n) => ({ id: `f${n}` })],
    ];
    const total = 5000;
    const published: Array<Promise<unknown>> = [];
    for (let n = 0; n < total; n += 1) {
      const [command, body] = kinds[n % kinds.length]!;
      published.push(probe.client.publishAsync(`${b}/request/${command}`, JSON.stringify(body(n)), { qos: 1 }));
    }
    await Promise.all(published);
    // Answers arrive until the agent has gone through what reached it; then the count settles.
    let last = -1;
    await waitUntil(
      async () => {
        const now = probe!.received.length;
        const settled = now === last || now >= total;
        last = now;
        if (!settled) await sleep(1000);
        return settled;
      },
      45_000,
      'the answers to settle',
      1000,
    );
    const codes = new Map<string, number>();
    for (const m of probe.received) {
      const body = JSON.parse(m.text) as { ok: boolean; error?: { code: string } };
      const code = body.ok ? 'ok' : body.error!.code;
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    const summary = JSON.stringify(Object.fromEntries(codes));
    // not_allowed is the plans' own answer: the allowlist, checked before anything is fetched.
    for (const code of codes.keys()) {
      assert.ok(['ok', 'busy', 'not_allowed'].includes(code), `unexpected ${code} in ${summary}`);
    }
    assert.ok(probe.received.length >= total / 5, `only ${probe.received.length} answers of ${total}: ${summary}`);
    assert.equal((await probe.request(b, 'ping', { id: 'after-flood' }, 10_000)).ok, true, 'alive after the flood');
    assert.equal(agent.child.exitCode, null);
    const grown = (rssOf(pid) - rssBefore) / 1024 / 1024;
    assert.ok(grown < 64, `RSS grew ${grown.toFixed(1)} MiB over the flood (${summary})`);
  });
});
