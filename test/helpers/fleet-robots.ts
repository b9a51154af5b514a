import mqtt from 'mqtt';
import type { StateSummary, SummaryStatus } from '../../agent/mqtt/summary.js';

/** One fake robot as the broker holds it: a retained availability and a retained summary. */
export interface FakeRobot {
  robot: string;
  online: boolean;
  status: SummaryStatus;
  outdated: boolean;
  /** Seconds ago the summary was last refreshed. */
  seenAgo: number;
  diskFree: number;
}

/** A summary of the documented shape (docs/schemas/state-summary.json), for what list shows. */
export function fakeSummary(r: FakeRobot, now = Date.now()): StateSummary {
  const seen = new Date(now - r.seenAgo * 1000).toISOString();
  const why = r.status === 'ok' ? [] : r.outdated ? ['ros: outdated'] : [`${r.status} for the test`];
  return {
    robot: r.robot,
    status: r.status,
    why,
    version: '0.0.0-test',
    docker: true,
    devices: { lidar: { present: true, health: 'good' }, camera: { present: true }, board: { present: true } },
    containers: {
      total: 4,
      running: 4,
      outdated: r.outdated ? 1 : 0,
      list: [
        ...['rosbridge', 'camera-streamer', 'web-console'].map((name) => ({
          name,
          state: 'running' as const,
          image: `lab/${name}:1`,
          runs: `lab/${name}:1`,
          outdated: false,
        })),
        {
          name: 'ros',
          state: 'running',
          image: 'yahboomtechnology/ros-foxy:3.4.0',
          runs: r.outdated ? 'yahboomtechnology/ros-foxy:3.3.9' : 'yahboomtechnology/ros-foxy:3.4.0',
          outdated: r.outdated,
        },
      ],
      omitted: 0,
    },
    update: r.status === 'updating' ? { status: 'pulling', container: 'ros' } : { status: 'idle' },
    diskFree: r.diskFree,
    changed: seen,
    seen,
  };
}

/**
 * A fleet of n robots, named rosmaster-x3-lab-0001... (long names and four containers: 400 rows
 * are well over a pipe's 64 KiB): every 10th offline, every 7th degraded, every 11th
 * outdated (and so degraded), every 13th updating, disk free growing with the number. Number 3
 * is online by its availability but its summary is an hour old (a robot that hangs).
 */
export function fakeFleet(n: number): FakeRobot[] {
  return Array.from({ length: n }, (_, i) => {
    const k = i + 1;
    const outdated = k % 11 === 0;
    const status: SummaryStatus = k % 13 === 0 ? 'updating' : k % 7 === 0 || outdated ? 'degraded' : 'ok';
    return {
      robot: `rosmaster-x3-lab-${String(k).padStart(4, '0')}`,
      online: k % 10 !== 0,
      status,
      outdated,
      seenAgo: k % 10 === 0 ? 7200 : k === 3 ? 3600 : 5,
      diskFree: k * 1e9,
    };
  });
}

/** Publishes the fleet retained on broker under base; returns a function that clears it again. */
export async function publishFleet(url: string, base: string, robots: FakeRobot[]): Promise<() => Promise<void>> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 4 });
  const topics: string[] = [];
  const retained = { qos: 1 as const, retain: true };
  try {
    // A few hundred at a time in flight: QoS 1, so all are on the broker when this returns.
    for (let at = 0; at < robots.length; at += 100) {
      await Promise.all(
        robots.slice(at, at + 100).flatMap((r) => {
          topics.push(`${base}/${r.robot}/availability`, `${base}/${r.robot}/state`);
          return [
            client.publishAsync(`${base}/${r.robot}/availability`, r.online ? 'online' : 'offline', retained),
            client.publishAsync(`${base}/${r.robot}/state`, JSON.stringify(fakeSummary(r)), retained),
          ];
        }),
      );
    }
  } finally {
    await client.endAsync();
  }
  return async () => {
    const cleaner = await mqtt.connectAsync(url, { protocolVersion: 4 });
    try {
      for (let at = 0; at < topics.length; at += 200) {
        await Promise.all(topics.slice(at, at + 200).map((t) => cleaner.publishAsync(t, '', { qos: 1, retain: true })));
      }
    } finally {
      await cleaner.endAsync();
    }
  };
}
