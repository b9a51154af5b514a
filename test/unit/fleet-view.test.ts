import assert from 'node:assert/strict';
import {
  filterRobots,
  fleetTotals,
  globToRegExp,
  liveness,
  seenAgo,
  sortRobots,
  type RobotView,
} from '../../agent/fleet/fleet-select.js';
import { renderFleetTable, renderTotals } from '../../agent/fleet/fleet-view.js';
import { fakeSummary, type FakeRobot } from '../helpers/fleet-robots.js';

const NOW = Date.parse('2026-12-06T10:00:00.000Z');

type Twist = Partial<FakeRobot> & { availability?: boolean | null; noState?: true };

function robot(name: string, o: Twist = {}): RobotView {
  const r: FakeRobot = { robot: name, online: true, status: 'ok', outdated: false, seenAgo: 5, diskFree: 10e9, ...o };
  const online = o.availability === undefined ? r.online : o.availability;
  return { robot: name, online, state: o.noState ? null : fakeSummary(r, NOW) };
}

const fleet: RobotView[] = [
  robot('x3-10', { status: 'degraded', outdated: true, diskFree: 2e9 }),
  robot('x3-2'),
  robot('x3-1', { online: false, seenAgo: 7200 }),
  robot('x3-3', { seenAgo: 600, status: 'error' }),
  robot('lab-1', { status: 'updating', diskFree: 50e9 }),
  robot('lab-2', { availability: null }),
  robot('lab-3', { noState: true }),
];

describe('fleet view: liveness, filters, sort and totals (pure)', () => {
  it('tells live rows from offline, stale and unknown ones', () => {
    const live = Object.fromEntries(fleet.map((r) => [r.robot, liveness(r, NOW)]));
    assert.deepEqual(live, {
      'x3-10': 'online',
      'x3-2': 'online',
      'x3-1': 'offline',
      'x3-3': 'stale',
      'lab-1': 'online',
      'lab-2': 'unknown',
      'lab-3': 'online',
    });
    // Three heartbeats by default; --stale moves the line.
    assert.equal(liveness(fleet[3]!, NOW, 601_000), 'online');
    assert.equal(liveness({ ...fleet[1]!, state: { ...fleet[1]!.state!, seen: 'garbage' } }, NOW), 'stale');
    assert.equal(seenAgo(fleet[2]!, NOW), 7200);
    assert.equal(seenAgo(fleet[6]!, NOW), null);
  });

  it('filters: all given must hold; offline takes stale rows; degraded takes errors; names by * and ?', () => {
    const names = (f: Parameters<typeof filterRobots>[1]) =>
      filterRobots(fleet, f, NOW)
        .map((r) => r.robot)
        .sort();
    assert.deepEqual(names({ online: true }), ['lab-1', 'lab-3', 'x3-10', 'x3-2']);
    assert.deepEqual(names({ offline: true }), ['x3-1', 'x3-3']);
    assert.deepEqual(names({ degraded: true }), ['x3-10', 'x3-3']);
    assert.deepEqual(names({ outdated: true }), ['x3-10']);
    assert.deepEqual(names({ name: 'x3-?' }), ['x3-1', 'x3-2', 'x3-3']);
    assert.deepEqual(names({ name: 'x3-*', online: true }), ['x3-10', 'x3-2']);
    assert.deepEqual(names({ name: 'x3.1' }), []);
    assert.ok(globToRegExp('a+(b)[c]*').test('a+(b)[c]d'));
    assert.ok(!globToRegExp('lab').test('lab-1'));
  });

  it('sorts by name (numbers as numbers), status worst first, seen oldest first, disk least free first', () => {
    const order = (key: Parameters<typeof sortRobots>[1]) => sortRobots(fleet, key).map((r) => r.robot);
    assert.deepEqual(order('name'), ['lab-1', 'lab-2', 'lab-3', 'x3-1', 'x3-2', 'x3-3', 'x3-10']);
    assert.deepEqual(order('status'), ['x3-3', 'x3-10', 'lab-1', 'lab-2', 'x3-1', 'x3-2', 'lab-3']);
    assert.deepEqual(order('seen').slice(0, 3), ['lab-3', 'x3-1', 'x3-3']);
    assert.deepEqual(order('disk'), ['x3-10', 'lab-2', 'x3-1', 'x3-2', 'x3-3', 'lab-1', 'lab-3']);
  });

  it('counts the fleet, and says how many rows the filters kept', () => {
    const t = fleetTotals(fleet, NOW);
    const ones = { stale: 1, unknown: 1, error: 1, degraded: 1, updating: 1, outdated: 1 };
    assert.deepEqual(t, { robots: 7, online: 4, offline: 1, ...ones });
    assert.equal(
      renderTotals(t, 7),
      '7 robots: 4 online, 1 offline, 1 stale, 1 unknown; 1 error, 1 degraded, 1 updating, 1 outdated',
    );
    const calm = fleetTotals([fleet[1]!], NOW);
    const none = '0 error, 0 degraded, 0 updating, 0 outdated';
    assert.equal(renderTotals(calm, 0), `1 robot (0 shown): 1 online, 0 offline; ${none}`);
  });

  it('draws rows that are not live as their last word: OFFLINE or STALE, "was" status, and the age', () => {
    const lines = renderFleetTable(fleet, NOW, { sort: 'status' })
      .split('\n')
      .map((l) => l.split(/ {2,}/));
    const by = new Map(lines.slice(1).map((cells) => [cells[0], cells]));
    assert.deepEqual(
      lines.slice(1).map((cells) => cells[0]),
      sortRobots(fleet, 'status').map((r) => r.robot),
    );
    assert.deepEqual([by.get('x3-1')![1], by.get('x3-1')![2], by.get('x3-1')![9]], ['OFFLINE', 'was ok', '2h ago']);
    assert.deepEqual([by.get('x3-3')![1], by.get('x3-3')![2], by.get('x3-3')![9]], ['STALE', 'was ERROR', '10m ago']);
    assert.deepEqual([by.get('x3-10')![1], by.get('x3-10')![2]], ['online', 'DEGRADED']);
    assert.match(by.get('x3-10')![6]!, /ros:running OUTDATED/);
    assert.deepEqual([by.get('lab-2')![1], by.get('lab-2')![2]], ['?', 'ok']);
    assert.deepEqual(by.get('lab-3')!.slice(1, 3), ['online', '-']);
  });
});
