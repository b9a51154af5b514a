import assert from 'node:assert/strict';
import { join } from 'node:path';
import { docker } from '../helpers/engine-cli.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig } from '../setup.js';
import { rssOf, useSpawnedAgent } from './agent-on-rig.js';

const LIMIT = 192 * 1024;

/**
 * 30 MiB on stdout without a newline (a 1 MiB string doubled up in the shell, printed 30 times),
 * then a marker file, then idle. The engine's json-file log keeps a line in 16 KiB pieces, each
 * a line for tail: a tail of 1000 (reconcile.logTail's default) is 16 MB of one line, which
 * `logs` used to read whole into memory.
 */
const PRINTER = [
  'sh',
  '-c',
  's=aaaaaaaa; i=0; while [ $i -lt 17 ]; do s=$s$s; i=$((i+1)); done; ' +
    'i=0; while [ $i -lt 30 ]; do echo -n $s; i=$((i+1)); done; touch /tmp/printed; ' +
    "trap 'exit 0' TERM; while true; do sleep 1; done",
];

describe('logs: a huge line costs a bounded amount of memory', function () {
  this.timeout(60_000);
  const spawned = useSpawnedAgent();

  afterEach(() => {
    try {
      docker('rm', '-f', 'ros');
    } catch {
      // not there
    }
  });

  it('8 concurrent logs of 30 MB printed without a newline: RSS grows < 64 MiB, answers <= 192 KiB', async function () {
    const rig = needRig(this);
    docker('pull', rig.fixtures.registryImages.v339);
    docker('tag', rig.fixtures.registryImages.v339, rig.fixtures.images.v339);
    const dir = tempDir('rfa-logs-');
    const {
      probe,
      base: b,
      pid,
    } = await spawned.start(rig, 'logs', {
      devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
      containers: { ros: { image: rig.fixtures.images.v339, command: PRINTER, stopTimeout: 1 } },
    });
    await waitUntil(
      () => {
        try {
          return docker('exec', 'ros', 'test', '-f', '/tmp/printed') === '';
        } catch {
          return false;
        }
      },
      30_000,
      'ros printed its 30 MiB',
    );
    const before = rssOf(pid);
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(pid));
    }, 20);
    let answers: Array<Record<string, unknown>>;
    try {
      const ask = (i: number) => probe.request(b, 'logs', { id: `logs-${i}`, name: 'ros', tail: 1000 }, 30_000);
      answers = await Promise.all(Array.from({ length: 8 }, (_, i) => ask(i)));
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rssOf(pid));
    const grown = (peak - before) / 1024 / 1024;
    assert.ok(grown < 64, `RSS grew ${grown.toFixed(1)} MiB for 8 logs requests`);
    for (const answer of answers) {
      assert.equal(answer.ok, true, JSON.stringify(answer).slice(0, 300));
      const result = answer.result as { lines: string[]; truncated: boolean };
      const bytes = Buffer.byteLength(result.lines.join('\n'));
      assert.ok(bytes <= LIMIT, `an answer of ${bytes} bytes of log`);
      assert.ok(bytes > LIMIT / 2, `only ${bytes} bytes: the newest bytes were not kept`);
      assert.equal(result.truncated, true);
      assert.match(result.lines.at(-1)!, /^a+$/);
    }
    assert.equal((await probe.request(b, 'ping', { id: 'after' })).ok, true);
  });
});
