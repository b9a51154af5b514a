import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../agent/core/package-root.js';
import { fakeFleet, fakeSummary, publishFleet, type FakeRobot } from '../helpers/fleet-robots.js';
import { Contract } from '../helpers/contract.js';
import { tempDir } from '../helpers/temp.js';
import { startDaemon, type Daemon } from '../rig/daemon.js';
import { startMosquitto, type MosquittoRig } from '../rig/mosquitto.js';
import { freePort, tcpOpen } from '../rig/net.js';
import { needRig, rig } from '../setup.js';

interface Piped {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * robot-fleet through a real pipe into a reader that starts late (`| (sleep 1; cat)`): what a
 * process exit leaves in a pipe's buffer is lost, as with `list | less` on a busy terminal.
 */
function piped(args: string[], lateReader = true): Promise<Piped> {
  const main = join(packageRoot(), 'build/agent/fleet/main.js');
  const script = `set -o pipefail; "$0" "$1" "\${@:2}" | ${lateReader ? '(sleep 1; cat)' : 'cat'}`;
  const child = spawn('bash', ['-c', script, process.execPath, main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

const N = 400;
const fleet = fakeFleet(N);
const rowsOf = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .slice(1, -1)
    .map((l) => l.split(/ {2,}/));
const names = (robots: FakeRobot[]) => robots.map((r) => r.robot).sort();

describe('robot-fleet list at fleet size (400 robots on the rig broker)', function () {
  this.timeout(120_000);
  const base = `fleet-list-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  let clear: (() => Promise<void>) | undefined;
  const common = () => ['--broker', rig().mqtt.url, '--base', base, '--timeout', '30'];

  before(async function () {
    needRig(this);
    new Contract().assert('state-summary.json', fakeSummary(fleet[0]!));
    clear = await publishFleet(rig().mqtt.url, base, fleet);
  });

  after(async () => {
    await clear?.();
  });

  it('list | cat shows every robot and the totals, whole, though it is far more than a pipe holds', async () => {
    const run = await piped([...common(), 'list']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    assert.ok(run.stdout.length > 64 * 1024, `${run.stdout.length} characters: more than a pipe's 64 KiB`);
    const rows = rowsOf(run.stdout);
    assert.deepEqual(
      rows.map((r) => r[0]),
      names(fleet),
    );
    const offline = fleet.filter((r) => !r.online).length;
    const outdated = fleet.filter((r) => r.outdated).length;
    const count = (status: string) => fleet.filter((r) => r.status === status).length;
    const totals = run.stdout.trim().split('\n').at(-1);
    assert.equal(
      totals,
      `${N} robots: ${N - offline - 1} online, ${offline} offline, 1 stale; 0 error, ${count('degraded')} degraded, ` +
        `${count('updating')} updating, ${outdated} outdated`,
    );
  });

  it('never warns of a drop that did not happen: its marker waits behind the retained messages', async () => {
    // A QoS 0 marker skipped the broker's queue and came back before the availabilities: a third of
    // the lists warned that robots were missing. Ten in a row make that all but certain to show.
    for (let i = 0; i < 10; i += 1) {
      const run = await piped([...common(), 'list', '--json'], false);
      assert.equal(run.stderr, '', `list ${i + 1}`);
      assert.equal((JSON.parse(run.stdout) as unknown[]).length, N);
    }
  });

  it('shows an offline robot and one whose summary stopped as such: "was" status, how long ago', async () => {
    const few = await piped([...common(), 'list', '--name', 'rosmaster-x3-lab-00?0', '--sort', 'name']);
    assert.equal(few.code, 0, few.stderr);
    const rows = rowsOf(few.stdout);
    const tens = ['0010', '0020', '0030', '0040', '0050', '0060', '0070', '0080', '0090'];
    assert.deepEqual(
      rows.map((r) => r[0]),
      tens.map((n) => `rosmaster-x3-lab-${n}`),
    );
    for (const r of rows) {
      assert.equal(r[1], 'OFFLINE');
      assert.match(r[2]!, /^was (ok|DEGRADED|UPDATING)$/);
      assert.equal(r[9], '2h ago');
    }
    assert.match(few.stdout.trim().split('\n').at(-1)!, /^400 robots \(9 shown\): /);
    const stale = rowsOf((await piped([...common(), 'list', '--name', '*-0003'])).stdout);
    const staleCells = stale.map((r) => [r[0], r[1], r[2], r[9]]);
    assert.deepEqual(staleCells, [['rosmaster-x3-lab-0003', 'STALE', 'was ok', '1h ago']]);
    const fresh = rowsOf((await piped([...common(), 'list', '--name', '*-0003', '--stale', '7300'])).stdout);
    assert.deepEqual(
      fresh.map((r) => [r[1], r[2]]),
      [['online', 'ok']],
    );
  });

  it('filters and sorts', async () => {
    const offline = rowsOf((await piped([...common(), 'list', '--offline'])).stdout);
    assert.deepEqual(
      offline.map((r) => r[0]),
      names(fleet.filter((r) => !r.online || r.seenAgo > 180)),
    );
    const online = rowsOf((await piped([...common(), 'list', '--online', '--outdated'])).stdout);
    assert.deepEqual(
      online.map((r) => r[0]),
      names(fleet.filter((r) => r.online && r.seenAgo < 180 && r.outdated)),
    );
    assert.ok(online.every((r) => / OUTDATED/.test(r[6]!)));
    const degradedRun = await piped([...common(), 'list', '--degraded', '--name', 'rosmaster-x3-lab-01*']);
    const degraded = rowsOf(degradedRun.stdout);
    const wanted = fleet.filter((r) => r.status === 'degraded' && r.robot.startsWith('rosmaster-x3-lab-01'));
    assert.deepEqual(
      degraded.map((r) => r[0]),
      names(wanted),
    );
    const byDisk = rowsOf((await piped([...common(), 'list', '--sort', 'disk'])).stdout);
    assert.deepEqual(
      byDisk.slice(0, 3).map((r) => r[0]),
      ['0001', '0002', '0003'].map((n) => `rosmaster-x3-lab-${n}`),
    );
    const bySeen = rowsOf((await piped([...common(), 'list', '--sort', 'seen'])).stdout);
    assert.deepEqual(
      bySeen.slice(0, 2).map((r) => r[0]),
      ['rosmaster-x3-lab-0010', 'rosmaster-x3-lab-0020'],
    );
    const byStatus = rowsOf((await piped([...common(), 'list', '--sort', 'status'])).stdout);
    assert.equal(byStatus[0]![0], 'rosmaster-x3-lab-0007');
    assert.match(byStatus.at(-1)![2]!, /ok$/);
    const bad = await piped([...common(), 'list', '--sort', 'size']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--sort takes one of name, status, seen, disk/);
  });

  it('list --json through a pipe parses and has every robot, marked live or not', async () => {
    const run = await piped([...common(), 'list', '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(run.stdout.length > 131_022, `${run.stdout.length} characters`);
    type Row = { robot: string; online: boolean; liveness: string; seenAgo: number };
    const robots = JSON.parse(run.stdout) as Row[];
    assert.deepEqual(
      robots.map((r) => r.robot),
      names(fleet),
    );
    const by = new Map(robots.map((r) => [r.robot, r]));
    assert.equal(by.get('rosmaster-x3-lab-0010')!.liveness, 'offline');
    assert.equal(by.get('rosmaster-x3-lab-0003')!.liveness, 'stale');
    assert.equal(by.get('rosmaster-x3-lab-0001')!.liveness, 'online');
    assert.ok(by.get('rosmaster-x3-lab-0003')!.seenAgo >= 3600);
  });
});

describe('robot-fleet list on a broker whose queue cannot take the fleet', function () {
  this.timeout(120_000);
  const base = 'fleet';
  const brokers: MosquittoRig[] = [];

  after(async () => {
    for (const b of brokers) await b.stop();
  });

  /** A mosquitto of our own with a per-client queue of `limit` messages, holding 400 robots. */
  async function brokerWithQueue(limit: number): Promise<MosquittoRig> {
    const dir = join(tempDir('rfa-fleet-q-'), 'mqtt');
    const b = await startMosquitto(dir, { extraConfig: [`max_queued_messages ${limit}`] });
    brokers.push(b);
    await publishFleet(b.url, base, fleet);
    return b;
  }

  it('warns, naming max_queued_messages, when robots are missing (a queue of 100, 800 retained)', async function () {
    needRig(this);
    const b = await brokerWithQueue(100);
    const run = await piped(['--broker', b.url, '--timeout', '30', 'list']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /robots are missing from this list, which has \d+; set max_queued_messages/);
    const rows = rowsOf(run.stdout);
    assert.ok(rows.length > 0 && rows.length < N, `${rows.length} rows`);
    // What it lists it lists whole: availability asked for again, topic by topic.
    assert.ok(
      rows.every((r) => r[1] !== '?'),
      'every listed robot has its availability',
    );
    const json = await piped(['--broker', b.url, '--timeout', '30', 'list', '--json']);
    assert.match(json.stderr, /max_queued_messages/);
    assert.equal((JSON.parse(json.stdout) as unknown[]).length, rows.length);
  });

  it('lists every robot and still says so when only availabilities were dropped (queue of 500)', async function () {
    needRig(this);
    const b = await brokerWithQueue(500);
    const run = await piped(['--broker', b.url, '--timeout', '30', 'list']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /dropped \d+ retained messages .*lists every robot with a summary.*max_queued_messages/);
    const rows = rowsOf(run.stdout);
    assert.deepEqual(
      rows.map((r) => r[0]),
      names(fleet),
    );
    assert.ok(rows.every((r) => r[1] !== '?'));
  });

  it('ends the burst on a quiet stream when the ACL refuses its marker, and still asks again', async function () {
    needRig(this);
    // Two listeners on one retained store: one to publish the fleet, one whose ACL only reads
    // fleet/# (the marker on fleet/robot-fleet-list-.../request/... is refused without a word).
    const dir = tempDir('rfa-fleet-acl-');
    const [open, readOnly] = [await freePort(), await freePort()];
    writeFileSync(join(dir, 'acl'), 'topic read fleet/#\n');
    writeFileSync(
      join(dir, 'mosquitto.conf'),
      [
        'user root',
        'per_listener_settings true',
        'persistence false',
        'max_queued_messages 500',
        `listener ${open} 127.0.0.1`,
        'allow_anonymous true',
        `listener ${readOnly} 127.0.0.1`,
        'allow_anonymous true',
        `acl_file ${join(dir, 'acl')}`,
        '',
      ].join('\n'),
    );
    const daemon: Daemon = await startDaemon({
      name: 'mosquitto-acl',
      cmd: 'mosquitto',
      args: ['-c', join(dir, 'mosquitto.conf')],
      logFile: join(dir, 'log'),
      ready: async () => (await tcpOpen(open)) && (await tcpOpen(readOnly)),
    });
    try {
      await publishFleet(`mqtt://127.0.0.1:${open}`, base, fleet);
      const run = await piped(['--broker', `mqtt://127.0.0.1:${readOnly}`, '--timeout', '30', 'list']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /dropped \d+ retained messages .*max_queued_messages/);
      assert.deepEqual(
        rowsOf(run.stdout).map((r) => r[0]),
        names(fleet),
      );
      assert.ok(rowsOf(run.stdout).every((r) => r[1] !== '?'));
    } finally {
      await daemon.stop();
    }
  });
});
