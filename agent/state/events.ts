import type { DocumentedEvents, SchemaError } from './documented-events.js';
import type { LidarHealthState } from './types.js';

/*
 * Every event the agent raises on its bus (and so publishes on <b>/events), by type: the fields
 * beside type, ts and id. The eight docs/schemas/event.json checks in detail come from it
 * (documented-events.ts, generated); the others are written here, as docs/mqtt-api.md#events
 * lists them. Types only: nothing here may import from the folders that raise the events
 * (state/ sits below them), so their fields are written out structurally.
 */

/** Progress of a long operation (pull, push, build, snapshot push): its own counters, as it reports them. */
export type ProgressFields = Record<string, unknown>;

/** Where a device is (was), as placed from sysfs; device.changed adds what moved. */
export type DeviceEventFields = {
  device: 'lidar' | 'camera' | 'board';
  /** device.changed: each field that moved, [before, after]. */
  changes?: Record<string, [unknown, unknown]>;
} & Record<string, unknown>;

/** An image operation (push, save, load, import, build, prune) that finished. */
export type ImageDoneFields = { image?: string };
export type ImageFailedFields = { image?: string; error: SchemaError };

/** What every update event says: which container, from which image to which. */
export type UpdateBaseFields = {
  container: string;
  from: string | null;
  to: string;
  /** The request that started it, when a command did (also as the event's id). */
  requestId?: string;
};

/** A new container that failed: how it ended and what it printed last. */
type LastWords = { exitCode: number | null; logs: string[] };

export interface AgentEvents extends DocumentedEvents {
  'device.attached': DeviceEventFields;
  'device.detached': DeviceEventFields;
  'device.changed': DeviceEventFields;
  'device.health': {
    device: 'lidar';
    health: LidarHealthState;
    previous: Pick<LidarHealthState, 'status' | 'errorCode'>;
  };

  'pull.progress': ProgressFields;
  'push.progress': ProgressFields;
  'build.progress': ProgressFields;
  'snapshot.progress': ProgressFields;
  /** The pull's progress, with the update's container, from and to. */
  'update.progress': UpdateBaseFields & ProgressFields;

  /** The pull's result (commands/pull.json). */
  'pull.done': {
    image: string;
    imageId: string;
    digest: string;
    source: 'mirror' | 'origin';
    bytesDownloaded: number;
    seconds: number;
    verified?: unknown;
  };
  'pull.failed': ImageFailedFields;
  'push.done': ImageDoneFields;
  'push.failed': ImageFailedFields;
  'save.done': ImageDoneFields;
  'save.failed': ImageFailedFields;
  'load.done': ImageDoneFields;
  'load.failed': ImageFailedFields;
  'import.done': ImageDoneFields;
  'import.failed': ImageFailedFields;
  'build.done': ImageDoneFields;
  'build.failed': ImageFailedFields;
  'prune.done': ImageDoneFields;
  'prune.failed': ImageFailedFields;

  'container.created': { name: string; image: string; containerId: string };
  'container.stopped': { name: string; reason: string };
  'container.recreated': { name: string; reason: string; image: string; committed?: string; containerId: string };
  /** Changes committed before a replacement, or by a snapshot (reused: an unchanged one taken again). */
  'container.committed': { name: string; image: string; changes: number; reused?: boolean };
  'container.recovered': { name: string; aside: string; outcome: string };

  'desired.changed': { containers: string[] };
  'desired.applied': { containers: Record<string, unknown>; version?: string | number };

  'snapshot.done': { container: string; image: string; layers: number; pushed?: string; savedTo?: string };
  /** image, imageId and kept: a commit the failure left behind (kept) or removed. */
  'snapshot.failed': { container: string; error: SchemaError; image?: unknown; imageId?: unknown; kept?: boolean };
  'snapshot.skipped': { container: string; reason: string };
  'snapshot.removed': { container: string; image: string };

  'update.started': UpdateBaseFields & { reason: string };
  'update.verified': UpdateBaseFields & {
    by?: 'healthcheck' | 'stable';
    probe?: boolean;
    downtimeMs: number;
    downtimeParts?: unknown;
  };
  'update.done': { container: string; from: string | null; to: string };
  'update.rolledback': UpdateBaseFields & { reason: SchemaError } & LastWords;
  'update.failed': UpdateBaseFields & { error: SchemaError } & Partial<LastWords>;
  'update.recovered': { container: string; from: string | null; to: string; step: string; outcome: string };
  'update.checked': {
    results: Array<{
      container: string;
      image: string;
      local: string | null;
      available: string | null;
      changed: boolean;
      error?: SchemaError;
    }>;
  };
}

export type EventType = keyof AgentEvents;

/** The progress events a command raises through its context (CommandContext.progress). */
export type ProgressEventType = 'pull.progress' | 'push.progress' | 'build.progress' | 'snapshot.progress';

/** What a raiser passes: the event's own fields, and the request id when a command caused it. */
export type EventFields<K extends EventType> = AgentEvents[K] & { id?: string };

/** What a listener gets: one typed event, narrowed by its `type` (`if (e.type === 'docker.lost') e.error`). */
export type BusEvent = { [K in EventType]: { type: K; ts: string; id?: string } & AgentEvents[K] }[EventType];
