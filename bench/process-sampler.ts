import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times; 100 on every Linux the robots run. */
const CLK_TCK = 100;

export interface ProcessFootprint {
  /** Mean resident set size over the window, bytes. */
  rssMean: number;
  rssMax: number;
  /** The lowest sample: what it settles to once start-up garbage is returned. */
  rssMin: number;
  /** CPU time over the window as a percentage of one core. */
  cpuPercent: number;
  seconds: number;
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ")".
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Samples several processes over the same window, once a second, so they share conditions. */
export async function sampleProcesses(
  pids: Record<string, number>,
  seconds: number,
): Promise<Record<string, ProcessFootprint>> {
  const names = Object.keys(pids);
  const startTicks = Object.fromEntries(names.map((n) => [n, cpuTicks(pids[n]!)]));
  const rss: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const t0 = Date.now();
  while (Date.now() - t0 < seconds * 1000) {
    for (const n of names) rss[n]!.push(rssBytes(pids[n]!));
    await new Promise((r) => setTimeout(r, 1000));
  }
  const elapsed = (Date.now() - t0) / 1000;
  return Object.fromEntries(
    names.map((n) => {
      const samples = rss[n]!;
      const ticks = cpuTicks(pids[n]!) - startTicks[n]!;
      return [
        n,
        {
          rssMean: samples.reduce((a, b) => a + b, 0) / samples.length,
          rssMax: Math.max(...samples),
          rssMin: Math.min(...samples),
          cpuPercent: (ticks / CLK_TCK / elapsed) * 100,
          seconds: elapsed,
        },
      ];
    }),
  );
}
