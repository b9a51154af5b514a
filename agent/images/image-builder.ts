import { statSync } from 'node:fs';
import { relative } from 'node:path';
import type { AgentConfig } from '../config/types.js';
import { AgentError } from '../core/errors.js';
import { refusedAs, type Engine } from '../docker/engine.js';
import { confinedPath } from './confined-path.js';
import { followEngineProgress } from './engine-progress.js';
import { ImageFiles } from './image-files.js';
import type { ImageReference } from '../core/image-reference.js';

/** `docker build` of a context under images.buildDir, its output as progress events. */
export async function buildImage(o: {
  engine: Engine;
  config: AgentConfig['images'];
  ref: ImageReference;
  context: unknown;
  dockerfile?: unknown;
  progress: (fields: Record<string, unknown>) => void;
}): Promise<{ image: string; imageId: string; steps: number }> {
  const dir = confinedPath(o.config.buildDir, o.context, { mustExist: true, key: 'images.buildDir' });
  if (!statSync(dir).isDirectory()) throw new AgentError('bad_path', `${dir} is not a directory`);
  const dockerfile = confinedPath(dir, o.dockerfile ?? 'Dockerfile', { mustExist: true, key: 'the build context' });
  const context = ImageFiles.contextTar({ dir: o.config.buildDir, key: 'images.buildDir' }, o.context);
  const stream = await o.engine
    .buildImage(context.stream, {
      t: o.ref.familiar,
      dockerfile: relative(dir, dockerfile),
      ...(o.config.buildNetwork === 'default' ? {} : { networkmode: o.config.buildNetwork }),
      rm: true,
      forcerm: true,
    })
    .catch(refusedAs('build_failed', `the build of ${o.ref.familiar}`));
  let steps = 0;
  let imageId: string | undefined;
  await followEngineProgress(o.engine, stream, {
    stallMs: o.config.stallTimeout * 1000,
    what: `the build of ${o.ref.familiar}`,
    classify: (err) => new AgentError('build_failed', `the build of ${o.ref.familiar} failed: ${err.message.trim()}`),
    onProgress: () => undefined,
    onMessage: (m) => {
      const line = m.stream?.trimEnd();
      if (line) {
        if (/^Step \d+\/\d+ :/.test(line)) steps += 1;
        o.progress({ image: o.ref.familiar, line: line.slice(0, 1000) });
      }
      const id = (m.aux as { ID?: string } | undefined)?.ID;
      if (id) imageId = id;
    },
  });
  const inspect = imageId ? undefined : await o.engine.inspectImage(o.ref.familiar);
  if (!imageId && !inspect) {
    throw new AgentError('build_failed', `the build of ${o.ref.familiar} ended but the engine has no such image`);
  }
  return { image: o.ref.familiar, imageId: imageId ?? inspect!.Id, steps };
}
