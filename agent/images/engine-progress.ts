import { AgentError } from '../core/errors.js';
import type { Engine, EngineMessage } from '../docker/engine.js';

export type { EngineMessage } from '../docker/engine.js';

export interface LayerProgress {
  status: string;
  current: number;
  total: number;
}

export interface ProgressSnapshot {
  layers: Record<string, LayerProgress>;
  /** Bytes moved and to move, over the layers whose size the engine told (0 when none did). */
  current: number;
  total: number;
  /** Layers finished (moved, or already there), of those the stream named. */
  layersDone: number;
  layersTotal: number;
}

/** At most two progress events a second: a 20 GB transfer must not flood a fleet's broker. */
export const PROGRESS_EVERY_MS = 500;

const TRANSFER = new Set(['Downloading', 'Pushing', 'Extracting']);
const FINISHED = new Set(['Download complete', 'Pull complete', 'Pushed', 'Layer already exists', 'Already exists']);

/**
 * Whether a status line is about a layer: the engine names layers by 12 hex digits of their
 * digest. Other ids are the tag ("3.3.9: Pulling from ...") or the repository: not layers.
 */
export function isLayerId(id: string | undefined): id is string {
  return id !== undefined && /^[a-f0-9]{12}$/.test(id);
}

/** A layer the registry already had: reused as is, or mounted from another repository. */
export function isExistingLayerStatus(status: string): boolean {
  return status === 'Layer already exists' || status === 'Already exists' || status.startsWith('Mounted from');
}

/**
 * Follows one engine progress stream to its end: per-layer bytes, throttled progress callbacks,
 * every message to `onMessage`, a failure when the stream carries an error, and a failure
 * when nothing moves for stallMs (a transfer that moves has no time limit).
 */
export function followEngineProgress(
  engine: Pick<Engine, 'followProgress'>,
  stream: NodeJS.ReadableStream,
  o: {
    stallMs: number;
    what: string;
    onProgress: (p: ProgressSnapshot) => void;
    onMessage?: (m: EngineMessage) => void;
    classify: (err: Error) => AgentError;
  },
): Promise<ProgressSnapshot> {
  return new Promise((resolve, reject) => {
    const layers: Record<string, LayerProgress> = {};
    let lastMove = Date.now();
    let lastEmit = 0;
    let settled = false;
    let streamError: string | undefined;
    const snapshot = (): ProgressSnapshot => {
      const values = Object.values(layers);
      return {
        // A copy: an event queued for the broker must say what was true when it was made.
        layers: Object.fromEntries(Object.entries(layers).map(([id, l]) => [id, { ...l }])),
        current: values.reduce((s, l) => s + l.current, 0),
        total: values.reduce((s, l) => s + l.total, 0),
        layersDone: values.filter((l) => FINISHED.has(l.status) || isExistingLayerStatus(l.status)).length,
        layersTotal: values.length,
      };
    };
    const emit = (force: boolean) => {
      const now = Date.now();
      if (!force && now - lastEmit < PROGRESS_EVERY_MS) return;
      lastEmit = now;
      o.onProgress(snapshot());
    };
    const settle = (err?: AgentError) => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      if (err) reject(err);
      else resolve(snapshot());
    };
    const watchdog = setInterval(
      () => {
        if (Date.now() - lastMove < o.stallMs) return;
        (stream as unknown as { destroy?: () => void }).destroy?.();
        settle(new AgentError('stalled', `${o.what} moved no byte for ${Math.round(o.stallMs / 1000)} s`));
      },
      Math.min(1000, o.stallMs),
    );
    engine.followProgress(
      stream,
      (err: Error | null) => {
        if (err) settle(o.classify(err));
        else if (streamError) settle(o.classify(new Error(streamError)));
        else {
          emit(true);
          settle();
        }
      },
      (message: EngineMessage) => {
        lastMove = Date.now();
        o.onMessage?.(message);
        if (message.error) {
          streamError = message.error;
          return;
        }
        if (!isLayerId(message.id) || !message.status) return;
        const before = layers[message.id];
        const detail = message.progressDetail ?? {};
        const next: LayerProgress = {
          status: message.status,
          current: before?.current ?? 0,
          total: before?.total ?? 0,
        };
        if (TRANSFER.has(message.status) && message.status !== 'Extracting') {
          next.current = detail.current ?? next.current;
          next.total = detail.total ?? next.total;
        }
        if (FINISHED.has(message.status) || isExistingLayerStatus(message.status)) next.current = next.total;
        layers[message.id] = next;
        emit(false);
      },
    );
  });
}
