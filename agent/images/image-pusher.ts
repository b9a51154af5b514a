import type { AgentConfig } from '../config/types.js';
import { AgentError } from '../core/errors.js';
import { refusedAs, type Engine } from '../docker/engine.js';
import {
  followEngineProgress,
  isExistingLayerStatus,
  isLayerId,
  type EngineMessage,
  type ProgressSnapshot,
} from './engine-progress.js';
import type { ImageReference } from '../core/image-reference.js';
import { classifyPullError } from './image-puller.js';
import type { RegistryClient } from './registry-client.js';

export interface PushResult {
  image: string;
  digest: string | null;
  /** Layers that went up, and those the registry already had. */
  layersPushed: string[];
  layersExisting: string[];
  bytesPushed: number;
  /** snapshots.signKeyFile: where the robot's signature of the pushed digest is (repository:sha256-<hex>.sig). */
  signature?: string;
}

/** `docker push` with credentials, progress events, and what actually went up. */
export async function pushImage(o: {
  engine: Engine;
  registry: RegistryClient;
  config: AgentConfig['images'];
  ref: ImageReference;
  progress: (fields: Record<string, unknown>) => void;
}): Promise<PushResult> {
  if (!(await o.engine.inspectImage(o.ref.familiar))) {
    throw new AgentError('image_not_found', `no image ${o.ref.familiar} on this robot`);
  }
  const credentials = o.registry.credentials(o.ref.registry);
  const auth = credentials ? { ...credentials, serveraddress: o.ref.registry } : {};
  const stream = await o.engine
    .pushImage(o.ref.familiar, { tag: o.ref.tag ?? 'latest', auth })
    .catch(refusedAs('push_failed', `the push of ${o.ref.familiar}`));
  const pushed = new Set<string>();
  const existing = new Set<string>();
  let digest: string | null = null;
  const final = await followEngineProgress(o.engine, stream, {
    stallMs: o.config.stallTimeout * 1000,
    what: `the push of ${o.ref.familiar}`,
    classify: (err) => {
      const c = classifyPullError(err, o.ref.familiar);
      return c.code === 'pull_failed'
        ? new AgentError('push_failed', `the push of ${o.ref.familiar} failed: ${err.message}`)
        : c;
    },
    onProgress: (p) => o.progress({ image: o.ref.familiar, ...byteTotals(p) }),
    onMessage: (m: EngineMessage) => {
      const aux = m.aux as { Digest?: string } | undefined;
      if (aux?.Digest) digest = aux.Digest;
      if (!isLayerId(m.id) || !m.status) return;
      if (m.status === 'Pushed') pushed.add(m.id);
      // "Mounted from <repo>": the registry reused a layer it had under another name.
      if (isExistingLayerStatus(m.status)) existing.add(m.id);
    },
  });
  return {
    image: o.ref.familiar,
    digest,
    layersPushed: [...pushed],
    layersExisting: [...existing],
    bytesPushed: [...pushed].reduce((sum, id) => sum + (final.layers[id]?.total ?? 0), 0),
  };
}

/**
 * Progress without made-up numbers: a push names its layers before it knows their sizes, and
 * layers the registry already has never get one. Byte counts go out only once there are some.
 */
function byteTotals(p: ProgressSnapshot): Record<string, unknown> {
  const { current, total, ...rest } = p;
  return total > 0 ? { ...rest, current, total } : rest;
}
