import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What a host metrics sample reads: CPU load, memory and the CPU's temperature. */
export interface HostReadings {
  /** Percent of all cores busy since the previous call (since construction the first time). */
  cpuLoad(): Promise<number | null>;
  memory(): Promise<{ total: number; used: number; available: number }>;
  /** Degrees Celsius, or null when the host has no CPU thermal zone. */
  cpuTemperature(): Promise<number | null>;
}

export interface ProcReadingsOptions {
  /** Injected for tests: a fake /proc and /sys. */
  procRoot?: string;
  sysfsRoot?: string;
}

/**
 * Reads /proc/stat, /proc/meminfo and the thermal zones directly. systeminformation, used
 * before, runs shells for two of the three on Linux (`cat /proc/stat | grep cpu` through
 * execSync, a loop over hwmon, sometimes `sensors`): measured 10 ms of children's CPU and 8 ms
 * of its own per sample on the 2-core test VM, several times that on a robot's ARM cores,
 * every 30 s, with the event loop blocked during the execSync; and its modules stayed in the
 * heap (~0.8 MiB) (issue 14, idle CPU and memory). Reading three small files costs well under a
 * millisecond and spawns nothing.
 *
 * Same figures as before: memory used is total - MemAvailable; the load counts iowait as idle,
 * like top; the temperature is the first thermal zone of the CPU (cpu-thermal on a Pi,
 * CPU-therm on a Jetson, x86_pkg_temp on a PC), else the first zone.
 */
export class ProcReadings implements HostReadings {
  private readonly proc: string;
  private readonly sys: string;
  private previous: Promise<CpuTicks | undefined>;
  private zone: Promise<string | undefined> | undefined;

  constructor(options: ProcReadingsOptions = {}) {
    this.proc = options.procRoot ?? '/proc';
    this.sys = options.sysfsRoot ?? '/sys';
    this.previous = this.ticks();
  }

  async cpuLoad(): Promise<number | null> {
    const before = await this.previous;
    const now = this.ticks();
    this.previous = now;
    const after = await now;
    if (!before || !after) return null;
    const total = after.total - before.total;
    if (total <= 0) return null;
    return (100 * (total - (after.idle - before.idle))) / total;
  }

  async memory(): Promise<{ total: number; used: number; available: number }> {
    const text = await readFile(join(this.proc, 'meminfo'), 'utf8');
    const kib = (key: string) => {
      const match = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text);
      return match ? Number(match[1]) * 1024 : undefined;
    };
    const total = kib('MemTotal') ?? 0;
    // Kernels before 3.14 have no MemAvailable: free plus what the page cache would give back.
    const available = kib('MemAvailable') ?? (kib('MemFree') ?? 0) + (kib('Buffers') ?? 0) + (kib('Cached') ?? 0);
    return { total, used: total - available, available };
  }

  async cpuTemperature(): Promise<number | null> {
    this.zone ??= this.findZone();
    const zone = await this.zone;
    if (!zone) return null;
    try {
      const milli = Number((await readFile(join(zone, 'temp'), 'utf8')).trim());
      return Number.isFinite(milli) ? milli / 1000 : null;
    } catch {
      return null;
    }
  }

  /** Found once: zones do not come and go. */
  private async findZone(): Promise<string | undefined> {
    const dir = join(this.sys, 'class', 'thermal');
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.startsWith('thermal_zone'));
      names.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    } catch {
      return undefined;
    }
    const typeOf = (zone: string) =>
      readFile(join(zone, 'type'), 'utf8').then(
        (t) => t.trim(),
        () => '',
      );
    const typed = await Promise.all(
      names.map(async (name) => ({ path: join(dir, name), type: await typeOf(join(dir, name)) })),
    );
    return (typed.find((z) => /cpu|x86_pkg_temp|soc/i.test(z.type)) ?? typed[0])?.path;
  }

  private async ticks(): Promise<CpuTicks | undefined> {
    try {
      const text = await readFile(join(this.proc, 'stat'), 'utf8');
      const line = /^cpu\s+(.*)$/m.exec(text);
      if (!line) return undefined;
      // user nice system idle iowait irq softirq steal (guest and guest_nice are in user and nice).
      const fields = line[1]!.trim().split(/\s+/).slice(0, 8).map(Number);
      const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
      return { total: fields.reduce((a, b) => a + b, 0), idle };
    } catch {
      return undefined;
    }
  }
}

interface CpuTicks {
  total: number;
  idle: number;
}
