import type { AgentEvent } from '../../state/event-bus.js';
import type { RobotView } from '../fleet-select.js';
import type { Role } from './tokens.js';

/**
 * The WebSocket protocol between `robot-fleet serve` and its page: JSON text frames, one message
 * each. The server replays what it holds, then relays changes; the page never speaks MQTT.
 */

/** The actions a page may ask for, each one MQTT command per robot (docs/mqtt-api.md). */
export const ACTION_COMMANDS = ['update', 'snapshot', 'restart', 'start', 'stop', 'restore'] as const;
export type ActionCommand = (typeof ACTION_COMMANDS)[number];

export type ServerMessage =
  | { t: 'hello'; role: Role; base: string; staleAfterMs: number; maxSelection: number }
  /** Part of the replay (in chunks), then each batch of changed robots. */
  | { t: 'robots'; robots: RobotView[]; gone?: string[]; replay?: boolean }
  /** The replay is complete: what the server holds is on the page. */
  | { t: 'replayed'; robots: number; warning: string | null }
  /** A robot's retained sections, for its page (after watch), then each one that changes. */
  | { t: 'sections'; robot: string; sections: Record<string, unknown> }
  | { t: 'events'; robot: string; events: AgentEvent[] }
  /** What happened to one robot of an action: sent, progress (from its events), then done. */
  | {
      t: 'action';
      action: string;
      robot: string;
      command: ActionCommand;
      phase: 'sent' | 'progress' | 'done';
      ok?: boolean;
      error?: { code: string; message: string };
      result?: unknown;
      progress?: { current: number; total: number } | null;
      event?: string;
    }
  | { t: 'logs'; robot: string; name: string; ok: boolean; lines?: string[]; error?: { code: string; message: string } }
  | { t: 'error'; code: string; message: string; ref?: string };

export type ClientMessage =
  | { t: 'watch'; robot: string | null }
  | { t: 'act'; id: string; command: ActionCommand; robots: string[]; args: Record<string, unknown> }
  | { t: 'logs'; robot: string; name: string; tail?: number };

/** Limits, shared by the server and the page. */
export const LIMITS = {
  /** A message from a page: an action on 2,000 robots with long names fits. */
  clientMessageBytes: 256 * 1024,
  /** Robots one action may address. */
  maxSelection: 2000,
  /** Robots per replay frame. */
  replayChunk: 500,
};
