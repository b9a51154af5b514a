import { existsSync } from 'node:fs';
import type { AgentConfig } from '../config/types.js';
import type { UpdateWindow } from './update-window.js';

export interface GateWait {
  waitingFor: 'window' | 'lock';
  nextWindow?: string | null;
}

/** The gates a swap waits for, as a query: the loop's planner reads them on each pass. */
export interface UpdateGate {
  /** Inside the maintenance window (always, without update.window). */
  windowOpen: boolean;
  /** When it opens next (null: no window, or none within 8 days). */
  nextWindow: string | null;
  /** The robot's inhibit lock file is there (it drives or teaches). */
  locked: boolean;
}

/**
 * What may hold a swap back now, as a query (the containers loop's planner reads it on each
 * pass, and re-plans when the window opens or the lock goes): inside the maintenance window or
 * not (and when it opens next), and whether the robot's inhibit lock file is there.
 */
export function updateGate(config: AgentConfig['update'], window: UpdateWindow, at = new Date()): UpdateGate {
  const windowOpen = window.isOpen(at);
  return {
    windowOpen,
    nextWindow: windowOpen ? null : (window.nextOpening(at)?.toISOString() ?? null),
    locked: existsSync(config.lockFile),
  };
}
