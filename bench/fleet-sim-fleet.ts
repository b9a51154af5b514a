import type { Logger } from '../agent/core/logger.js';
import { SimRobot } from './fleet-sim-robot.js';

export interface SimFleetOptions {
  url: string;
  baseTopic: string;
  /** Robots first..first+count-1 (a worker process runs one slice of the fleet). */
  first: number;
  count: number;
  /** Robots started per second: a bounded ramp, as a fleet that boots is not one instant. */
  rampPerSecond: number;
  heartbeatMs: number;
  /** Lidar replugs per robot per hour (the odd event: detached then attached 2 s later); 0 for none. */
  replugsPerHour: number;
  /** Robots that never replug by chance: the bench changes them itself and times it. */
  quiet?: string[];
  logger: Logger;
}

/** The name of robot i: sorted names sort as the indexes do. */
export function simRobotId(i: number): string {
  return `sim-${String(i).padStart(5, '0')}`;
}

/**
 * Many simulated robots in one process, started at a bounded rate. The first connect of each is
 * counted (the ramp's figure); replugs are spread at random over the hour.
 */
export class SimFleet {
  readonly robots = new Map<string, SimRobot>();
  private connectedCount = 0;
  private rampTimer: NodeJS.Timeout | undefined;
  private replugTimer: NodeJS.Timeout | undefined;
  private readonly replugs = new Set<NodeJS.Timeout>();
  private stopped = false;
  /** ms from start() to the first connect of every robot of the slice. */
  connectedAfterMs: number | undefined;

  constructor(private readonly options: SimFleetOptions) {}

  get connected(): number {
    return this.connectedCount;
  }

  /** Starts the ramp; resolves once every robot of the slice connected once. */
  start(): Promise<number> {
    const o = this.options;
    const t0 = Date.now();
    // Ten batches a second: smooth enough, and a timer per batch rather than per robot.
    const perTick = Math.max(1, Math.round(o.rampPerSecond / 10));
    let next = o.first;
    const end = o.first + o.count;
    return new Promise((resolve, reject) => {
      if (o.count === 0) return resolve(0);
      const launch = () => {
        for (let k = 0; k < perTick && next < end; k += 1, next += 1) {
          const id = simRobotId(next);
          const { url, baseTopic, heartbeatMs, logger } = o;
          const robot = new SimRobot({ id, url, baseTopic, heartbeatMs, logger }, next);
          this.robots.set(robot.options.id, robot);
          const off = robot.onConnect(() => {
            off();
            this.connectedCount += 1;
            if (this.connectedCount === o.count) {
              this.connectedAfterMs = Date.now() - t0;
              resolve(this.connectedAfterMs);
            }
          });
          robot.start().catch(reject);
        }
        if (next >= end) clearInterval(this.rampTimer);
      };
      this.rampTimer = setInterval(launch, 100);
      launch();
      this.startReplugs();
    });
  }

  robot(id: string): SimRobot | undefined {
    return this.robots.get(id);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.rampTimer);
    clearInterval(this.replugTimer);
    for (const timer of this.replugs) clearTimeout(timer);
    // In batches: a thousand simultaneous offline publishes and closes would be a burst of their own.
    const all = [...this.robots.values()];
    for (let i = 0; i < all.length; i += 500) await Promise.all(all.slice(i, i + 500).map((r) => r.stop()));
  }

  /** Every second, each robot replugs with probability replugsPerHour / 3600. */
  private startReplugs(): void {
    const chance = this.options.replugsPerHour / 3600;
    const quiet = new Set(this.options.quiet ?? []);
    if (chance <= 0) return;
    this.replugTimer = setInterval(() => {
      for (const robot of this.robots.values()) {
        if (quiet.has(robot.options.id) || !robot.connected || !robot.lidarPresent || Math.random() >= chance) continue;
        robot.setLidar(false);
        const back = setTimeout(() => {
          this.replugs.delete(back);
          if (!this.stopped) robot.setLidar(true);
        }, 2000);
        this.replugs.add(back);
      }
    }, 1000);
  }
}
