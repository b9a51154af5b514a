import { readdir, readlink, realpath } from 'node:fs/promises';

/**
 * Which other processes hold a device node open, from /proc/<pid>/fd. The lidar's port is
 * single-access in practice: while the ROS driver in its container reads it, a probe would
 * corrupt the driver's stream, so the agent asks only when nobody else has it open.
 */
export async function portHolders(devicePath: string, o: { procRoot?: string; selfPid?: number } = {}): Promise<number[]> {
  const procRoot = o.procRoot ?? '/proc';
  const self = o.selfPid ?? process.pid;
  let target: string;
  try {
    target = await realpath(devicePath);
  } catch {
    return [];
  }
  const pids = (await readdir(procRoot).catch(() => [] as string[])).filter((n) => /^\d+$/.test(n) && Number(n) !== self);
  const holders: number[] = [];
  await Promise.all(
    pids.map(async (pid) => {
      const fdDir = `${procRoot}/${pid}/fd`;
      const fds = await readdir(fdDir).catch(() => [] as string[]);
      for (const fd of fds) {
        const link = await readlink(`${fdDir}/${fd}`).catch(() => '');
        if (link === target) {
          holders.push(Number(pid));
          return;
        }
      }
    }),
  );
  return holders.sort((a, b) => a - b);
}
