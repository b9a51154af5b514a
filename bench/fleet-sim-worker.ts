/**
 * One slice of the simulated fleet in its own process (forked by bench/fleet-sim.ts), so that
 * the robots' CPU does not delay the process that measures what a dashboard sees. Talks over
 * the fork's IPC channel: "start" -> "connected"; "change" -> "changed"; "stop" -> "stopped".
 */
import { createLogger } from '../agent/core/logger.js';
import { SimFleet, type SimFleetOptions } from './fleet-sim-fleet.js';

export type WorkerRequest = { type: 'start' } | { type: 'change'; id: string; present: boolean } | { type: 'stop' };

export type WorkerReport =
  | { type: 'connected'; ms: number }
  | { type: 'changed'; id: string; at: number }
  | { type: 'stopped'; warnings: number; firstWarning?: string }
  | { type: 'failed'; message: string };

let warnings = 0;
let firstWarning: string | undefined;
const logger = createLogger({
  level: 'warn',
  // Counted, not printed: ten thousand robots that lose the broker at once would flood the terminal.
  write: (line) => {
    warnings += 1;
    firstWarning ??= line;
  },
});

const options = JSON.parse(process.argv[2] ?? '{}') as Omit<SimFleetOptions, 'logger'>;
const fleet = new SimFleet({ ...options, logger });
const report = (message: WorkerReport) => process.send?.(message);

process.on('message', (message: WorkerRequest) => {
  if (message.type === 'start') {
    fleet.start().then(
      (ms) => report({ type: 'connected', ms }),
      (err: unknown) => report({ type: 'failed', message: (err as Error).message }),
    );
  } else if (message.type === 'change') {
    const robot = fleet.robot(message.id);
    if (!robot) report({ type: 'failed', message: `no robot ${message.id} in this worker` });
    else report({ type: 'changed', id: message.id, at: robot.setLidar(message.present) });
  } else if (message.type === 'stop') {
    fleet.stop().then(
      () => {
        report({ type: 'stopped', warnings, ...(firstWarning ? { firstWarning } : {}) });
        process.exit(0);
      },
      (err: unknown) => {
        report({ type: 'failed', message: (err as Error).message });
        process.exit(1);
      },
    );
  }
});
// The bench gone (killed, crashed): a worker must not stay behind holding thousands of sockets.
process.on('disconnect', () => process.exit(0));
