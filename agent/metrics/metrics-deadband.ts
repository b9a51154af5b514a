import type { HostMetrics } from '../state/types.js';

/**
 * When a new sample of the host replaces the one in the state (and so goes out on
 * <b>/state/host): numbers that wander a little on an idle robot (CPU, memory, temperature,
 * uptime) are not news; a disk that fills is. Without this an idle robot sent its host
 * metrics with every sample, several KiB a minute, for nothing a dashboard would act on.
 */
export interface MetricsDeadband {
  /** A sample older than this is replaced anyway, so the details are never staler than it. */
  maxAgeMs: number;
  /** CPU, memory or temperature changes replace a sample at most this often. */
  minSpacingMs: number;
}

/** Percentage points of CPU load. */
export const CPU_DEADBAND = 25;
/** Share of total memory. */
export const MEMORY_DEADBAND = 0.1;
/** Degrees Celsius. */
export const TEMPERATURE_DEADBAND = 5;
/** Share of a disk's size, and at least this many bytes: a pull or a snapshot moves it at once. */
export const DISK_DEADBAND = 0.02;
export const DISK_DEADBAND_MIN_BYTES = 64 * 1024 * 1024;

/** Whether next should replace previous in the state (pure). */
export function metricsNewsworthy(previous: HostMetrics | null, next: HostMetrics, deadband: MetricsDeadband): boolean {
  if (!previous) return true;
  const age = Date.parse(next.sampledAt) - Date.parse(previous.sampledAt);
  if (!(age < deadband.maxAgeMs)) return true;
  if (diskMoved(previous, next)) return true;
  if (age < deadband.minSpacingMs) return false;
  const memoryMoved = Math.abs(next.memory.available - previous.memory.available);
  const memory = next.memory.total > 0 ? memoryMoved / next.memory.total : 0;
  return (
    moved(previous.cpuLoad, next.cpuLoad, CPU_DEADBAND) ||
    memory >= MEMORY_DEADBAND ||
    moved(previous.cpuTemperature, next.cpuTemperature, TEMPERATURE_DEADBAND)
  );
}

function diskMoved(previous: HostMetrics, next: HostMetrics): boolean {
  if (previous.disks.length !== next.disks.length) return true;
  return next.disks.some((disk) => {
    const before = previous.disks.find((d) => d.role === disk.role && d.path === disk.path);
    if (!before) return true;
    const band = Math.max(DISK_DEADBAND * disk.total, DISK_DEADBAND_MIN_BYTES);
    return Math.abs(disk.available - before.available) >= band;
  });
}

/** A value that appears, disappears or moves by band or more. */
function moved(before: number | null, after: number | null, band: number): boolean {
  if (before === null || after === null) return before !== after;
  return Math.abs(after - before) >= band;
}
