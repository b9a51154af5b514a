import { readdirSync, readlinkSync, realpathSync } from 'node:fs';

/**
 * Which other processes hold a device node open, from /proc/<pid>/fd. The lidar's port is
 * single-access in practice: while the ROS driver in its container reads it, a probe would
 * corrupt the driver's stream, so the agent asks only when nobody else has it open.
 *
 * A plain synchronous walk: procfs answers from memory, and a promise per descriptor of every
 * process (thousands on a robot running ROS) costs a burst of garbage that stays as resident
 * memory long after.
 */
export async function portHolders(devicePath: string, o: { procRoot?: string; selfPid?: number } = {}): Promise<number[]> {
  const procRoot = o.procRoot ?? '/proc';
  const self = o.selfPid ?? process.pid;
  let target: string;
  try {
    target = realpathSync(devicePath);
  } catch {
    return [];
  }
  const holders: number[] = [];
  for (const pid of list(procRoot)) {
    if (!/^\d+$/.test(pid) || Number(pid) === self) continue;
    const fdDir = `${procRoot}/${pid}/fd`;
    for (const fd of list(fdDir)) {
      let link: string;
      try {
        link = readlinkSync(`${fdDir}/${fd}`);
      } catch {
        continue;
      }
      if (link === target) {
        holders.push(Number(pid));
        break;
      }
    }
  }
  return holders.sort((a, b) => a - b);
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
