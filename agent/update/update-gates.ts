import { existsSync } from 'node:fs';
import type { AgentConfig } from '../config/types.js';
import { AgentError } from '../core/errors.js';
import type { UpdateWindow } from './update-window.js';

export interface GateWait {
  waitingFor: 'window' | 'lock';
  nextWindow?: string | null;
}

/**
 * Waits until a swap may happen: inside the maintenance window (unless forced) and with no
 * inhibit lock file, the lock for at most lockMaxWait. Reports each wait as it begins; wakes at
 * least every second so an abort (the agent stopping) ends it promptly.
 */
export async function waitForGates(o: {
  config: AgentConfig['update'];
  window: UpdateWindow;
  force: boolean;
  signal: AbortSignal;
  onWait: (wait: GateWait) => void;
}): Promise<void> {
  const tick = () => new Promise((r) => setTimeout(r, 1000));
  let lockSince: number | undefined;
  for (;;) {
    if (o.signal.aborted)
      throw new AgentError('update_aborted', 'the agent stopped before the swap; the update will run again');
    if (!o.force && !o.window.isOpen()) {
      o.onWait({ waitingFor: 'window', nextWindow: o.window.nextOpening()?.toISOString() ?? null });
    } else if (existsSync(o.config.lockFile)) {
      lockSince ??= Date.now();
      if (Date.now() - lockSince > o.config.lockMaxWait * 1000) {
        throw new AgentError(
          'update_locked',
          `${o.config.lockFile} has held the update back for over ${o.config.lockMaxWait} s (the robot's software is driving or teaching?); it will be tried again`,
        );
      }
      o.onWait({ waitingFor: 'lock' });
    } else {
      return;
    }
    await tick();
  }
}
