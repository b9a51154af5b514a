import type Docker from 'dockerode';
import { AgentError } from '../core/errors.js';

export interface LayerProgress {
  status: string;
  current: number;
  total: number;
}

export interface ProgressSnapshot {
  layers: Record<string, LayerProgress>;
  current: number;
  total: number;
}

/** One JSON message of the engine's pull, push, build or load streams. */
export interface EngineMessage {
  id?: string;
  status?: string;
  stream?: string;
  error?: string;
  aux?: Record<string, unknown>;
  progressDetail?: { current?: number; total?: number };
}

/** At most two progress events a second: a 20 GB transfer must not flood a fleet's broker. */
export const PROGRESS_EVERY_MS = 500;

const TRANSFER = new Set(['Downloading', 'Pushing', 'Extracting']);
const FINISHED = new Set(['Download complete', 'Pull complete', 'Pushed', 'Layer already exists', 'Already exists']);

/**
 * Follows one engine progress stream to its end: per-layer bytes, throttled progress callbacks,
 * every message to `onMessage`, a failure when the stream carries an error, and a failure
 * when nothing moves for stallMs (a transfer that moves has no time limit).
 */
export function followEngineProgress(
  modem: Docker['modem'],
  stream: NodeJS.ReadableStream,
  o: { stallMs: number; what: string; onProgress: (p: ProgressSnapshot) => void; onMessage?: (m: EngineMessage) => void; classify: (err: Error) => AgentError },
): Promise<ProgressSnapshot> {
  return new Promise((resolve, reject) => {
    const layers: Record<string, LayerProgress> = {};
    let lastMove = Date.now();
    let lastEmit = 0;
    let settled = false;
    let streamError: string | undefined;
    const snapshot = (): ProgressSnapshot => {
      const values = Object.values(layers);
      return { layers, current: values.reduce((s, l) => s + l.current, 0), total: values.reduce((s, l) => s + l.total, 0) };
    };
    const emit = (force: boolean) => {
      const now = Date.now();
      if (!force && now - lastEmit < PROGRESS_EVERY_MS) return;
      lastEmit = now;
      o.onProgress(snapshot());
    };
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      if (err) reject(err);
      else resolve(snapshot());
    };
    const watchdog = setInterval(() => {
      if (Date.now() - lastMove < o.stallMs) return;
      (stream as unknown as { destroy?: () => void }).destroy?.();
      settle(new AgentError('stalled', `${o.what} moved no byte for ${Math.round(o.stallMs / 1000)} s`));
    }, Math.min(1000, o.stallMs));
    modem.followProgress(
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
        if (!message.id || !message.status) return;
        const before = layers[message.id];
        const detail = message.progressDetail ?? {};
        const next: LayerProgress = { status: message.status, current: before?.current ?? 0, total: before?.total ?? 0 };
        if (TRANSFER.has(message.status) && message.status !== 'Extracting') {
          next.current = detail.current ?? next.current;
          next.total = detail.total ?? next.total;
        }
        if (FINISHED.has(message.status)) next.current = next.total;
        layers[message.id] = next;
        emit(false);
      },
    );
  });
}
