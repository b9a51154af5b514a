import { statfs } from 'node:fs/promises';
import { loadavg, uptime } from 'node:os';
import type { Logger } from '../core/logger.js';
import type { StateStore } from '../state/state-store.js';
import type { HostMetrics } from '../state/types.js';
import { metricsNewsworthy, type MetricsDeadband } from './metrics-deadband.js';
import { ProcReadings, type HostReadings } from './proc-readings.js';

export interface HostMetricsOptions {
  store: StateStore;
  logger: Logger;
  intervalMs: number;
  stateDir: string;
  /** When a sample replaces the one in the state; default: every 10 samples at most, 30 at least. */
  deadband?: MetricsDeadband;
  /** Injected for tests; /proc and /sys otherwise. */
  readings?: HostReadings;
}

/** At the default 30 s interval: CPU/memory news at most every 5 min, a fresh sample at least every 15. */
export function defaultDeadband(intervalMs: number): MetricsDeadband {
  return { minSpacingMs: intervalMs * 10, maxAgeMs: intervalMs * 30 };
}

/**
 * Samples the host every interval into state.host.metrics when the sample is news (a disk
 * filling, a big move of CPU or memory, or the one there getting old: metrics-deadband.ts).
 * Chosen to be cheap on a Pi: /proc and /sys reads and statfs(2), no process spawned, and
 * never two samples at once.
 */
export class HostMetricsSampler {
  readonly name = 'metrics';
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;
  private readonly readings: HostReadings;

  constructor(private readonly options: HostMetricsOptions) {
    this.readings = options.readings ?? new ProcReadings();
  }

  async start(): Promise<void> {
    await this.sample();
    this.timer = setInterval(() => void this.sample(), this.options.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
  }

  async sample(): Promise<HostMetrics | undefined> {
    if (this.sampling) return undefined;
    this.sampling = true;
    try {
      const [load, memory, temperature] = await Promise.all([
        this.readings.cpuLoad().catch(() => null),
        this.readings.memory(),
        this.readings.cpuTemperature().catch(() => null),
      ]);
      const dockerRoot = this.options.store.get().docker.rootDir;
      const disks = (
        await Promise.all([
          diskOf('state', this.options.stateDir),
          dockerRoot ? diskOf('docker', dockerRoot) : undefined,
        ])
      ).filter((d): d is NonNullable<typeof d> => d !== undefined);
      const la = loadavg();
      const metrics: HostMetrics = {
        sampledAt: new Date().toISOString(),
        cpuLoad: load !== null && Number.isFinite(load) ? round(load) : null,
        loadAverage: [round(la[0] ?? 0), round(la[1] ?? 0), round(la[2] ?? 0)],
        memory,
        disks,
        cpuTemperature: temperature !== null && temperature > 0 ? round(temperature) : null,
        uptime: Math.round(uptime()),
      };
      const deadband = this.options.deadband ?? defaultDeadband(this.options.intervalMs);
      if (!metricsNewsworthy(this.options.store.get().host.metrics, metrics, deadband)) return metrics;
      this.options.store.update('host', (host) => ({ ...host, metrics }));
      return metrics;
    } catch (err) {
      this.options.logger.warn('host metrics sample failed', { error: err as Error });
      return undefined;
    } finally {
      this.sampling = false;
    }
  }
}

async function diskOf(role: 'state' | 'docker', path: string): Promise<HostMetrics['disks'][number] | undefined> {
  try {
    const s = await statfs(path);
    return { role, path, total: s.blocks * s.bsize, free: s.bfree * s.bsize, available: s.bavail * s.bsize };
  } catch {
    return undefined;
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
