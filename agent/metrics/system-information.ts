import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as Si from 'systeminformation';

/**
 * The three systeminformation functions the agent samples, from the two files that define them:
 * the package's index loads every one of its modules (network, docker, printers, bluetooth, ...),
 * about 0.8 MiB of heap kept for the agent's life on every robot for nothing (issue 14).
 * Measured on node 20 (after gc): index 4.5 MiB heap, cpu.js + memory.js 3.7 MiB.
 * The package has no "exports" map, so these paths are public to node; if an upgrade moved
 * them, the fallback is the whole package, as before.
 */
export interface SystemInformation {
  currentLoad: typeof Si.currentLoad;
  mem: typeof Si.mem;
  cpuTemperature: typeof Si.cpuTemperature;
}

const require = createRequire(import.meta.url);

function load(): SystemInformation {
  try {
    const lib = dirname(require.resolve('systeminformation'));
    const cpu = require(join(lib, 'cpu.js')) as Pick<SystemInformation, 'currentLoad' | 'cpuTemperature'>;
    const memory = require(join(lib, 'memory.js')) as Pick<SystemInformation, 'mem'>;
    const whole = [cpu.currentLoad, cpu.cpuTemperature, memory.mem].every((f) => typeof f === 'function');
    if (whole) {
      return { currentLoad: cpu.currentLoad, mem: memory.mem, cpuTemperature: cpu.cpuTemperature };
    }
  } catch {
    // Moved in another version: the whole package below.
  }
  const si = require('systeminformation') as typeof Si;
  return { currentLoad: si.currentLoad, mem: si.mem, cpuTemperature: si.cpuTemperature };
}

export const systemInformation: SystemInformation = load();
