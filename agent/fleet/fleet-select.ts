import type { StateSummary } from '../mqtt/summary.js';

/** What the fleet broker holds for one robot: its retained summary (<b>/state) and availability. */
export interface RobotView {
  robot: string;
  online: boolean | null;
  state: StateSummary | null;
}

/**
 * Whether a row is live: online (availability online, summary fresh), offline (its last will),
 * stale (availability says online but the summary stopped coming: a broker or clock problem, or a
 * robot that hangs), unknown (no availability retained).
 */
export type Liveness = 'online' | 'offline' | 'stale' | 'unknown';

/**
 * A summary comes back every mqtt.heartbeat seconds (60 by default); three missed heartbeats make
 * it stale. The robot's heartbeat is not known here, hence --stale for fleets with another one.
 */
export const DEFAULT_STALE_MS = 3 * 60_000;

export const SORT_KEYS = ['name', 'status', 'seen', 'disk'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

/** The filters of `robot-fleet list`; all given must hold. */
export interface Filters {
  online?: boolean;
  offline?: boolean;
  outdated?: boolean;
  degraded?: boolean;
  /** A shell-style pattern (* and ?) the whole robot name must match. */
  name?: string;
}

export interface Totals {
  robots: number;
  online: number;
  offline: number;
  stale: number;
  unknown: number;
  error: number;
  degraded: number;
  updating: number;
  outdated: number;
}

export function liveness(r: RobotView, now: number, staleAfterMs = DEFAULT_STALE_MS): Liveness {
  if (r.online === false) return 'offline';
  if (r.state) {
    const seen = Date.parse(r.state.seen);
    if (!Number.isFinite(seen) || now - seen > staleAfterMs) return 'stale';
  }
  // Online with no summary yet: it just connected; its summary follows.
  return r.online === true ? 'online' : 'unknown';
}

/** Seconds since the robot last said it is here; null without a summary (or a readable seen). */
export function seenAgo(r: RobotView, now: number): number | null {
  const seen = r.state ? Date.parse(r.state.seen) : NaN;
  return Number.isFinite(seen) ? Math.max(0, Math.round((now - seen) / 1000)) : null;
}

/** A shell-style pattern as a regular expression on the whole name: * any run, ? one character. */
export function globToRegExp(glob: string): RegExp {
  const body = [...glob]
    .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, 's');
}

/** The rows the filters keep (pure). Degraded means not working as it should: degraded or error. */
export function filterRobots(
  robots: RobotView[],
  f: Filters,
  now: number,
  staleAfterMs = DEFAULT_STALE_MS,
): RobotView[] {
  const name = f.name === undefined ? null : globToRegExp(f.name);
  return robots.filter((r) => {
    const live = liveness(r, now, staleAfterMs);
    if (f.online && live !== 'online') return false;
    // Offline for an operator: not reachable now, whatever the last will says.
    if (f.offline && live !== 'offline' && live !== 'stale') return false;
    if (f.outdated && !((r.state?.containers.outdated ?? 0) > 0)) return false;
    if (f.degraded && r.state?.status !== 'degraded' && r.state?.status !== 'error') return false;
    if (name && !name.test(r.robot)) return false;
    return true;
  });
}

const STATUS_RANK: Record<StateSummary['status'], number> = { error: 0, degraded: 1, updating: 2, ok: 3 };
const byName = (a: RobotView, b: RobotView) => a.robot.localeCompare(b.robot, 'en', { numeric: true });

/**
 * The rows in the order asked (pure), the ones to look at first on top: status worst first, seen
 * longest ago first (never first of all), disk least free first (unknown last); name breaks ties.
 */
export function sortRobots(robots: RobotView[], key: SortKey = 'name'): RobotView[] {
  const by = {
    name: () => 0,
    status: (r: RobotView) => (r.state ? STATUS_RANK[r.state.status] : 4),
    seen: (r: RobotView) => {
      const seen = r.state ? Date.parse(r.state.seen) : NaN;
      return Number.isFinite(seen) ? seen : -Infinity;
    },
    disk: (r: RobotView) => r.state?.diskFree ?? Infinity,
  }[key];
  return [...robots].sort((a, b) => {
    const d = by(a) - by(b);
    return d < 0 ? -1 : d > 0 ? 1 : byName(a, b);
  });
}

/** The counts over every robot listed (pure); status counts are of the last summary, live or not. */
export function fleetTotals(robots: RobotView[], now: number, staleAfterMs = DEFAULT_STALE_MS): Totals {
  const t: Totals = {
    robots: robots.length,
    online: 0,
    offline: 0,
    stale: 0,
    unknown: 0,
    error: 0,
    degraded: 0,
    updating: 0,
    outdated: 0,
  };
  for (const r of robots) {
    t[liveness(r, now, staleAfterMs)] += 1;
    const status = r.state?.status;
    if (status === 'error' || status === 'degraded' || status === 'updating') t[status] += 1;
    if ((r.state?.containers.outdated ?? 0) > 0) t.outdated += 1;
  }
  return t;
}
