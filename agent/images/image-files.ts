import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import type { AgentConfig } from '../config/types.js';
import { AgentError } from '../core/errors.js';
import { confinedPath } from './confined-path.js';
import { isAllowed, parseImageReference, type ImageReference } from './image-reference.js';

/**
 * Images as files, for robots without a registry: `docker save` into the export directory,
 * `docker load` and `docker import` from the import directory (a USB stick), nowhere else.
 */
export class ImageFiles {
  constructor(private readonly o: { docker: () => Docker; config: AgentConfig['images'] }) {}

  async save(ref: ImageReference, file: unknown): Promise<{ image: string; file: string; bytes: number }> {
    const target = confinedPath(this.o.config.exportDir, file, { mustExist: false, key: 'images.exportDir' });
    if (await stat(target).then(() => true, () => false)) throw new AgentError('file_exists', `${target} already exists; choose another name`);
    const docker = this.o.docker();
    await docker.getImage(ref.familiar).inspect().catch((err: { statusCode?: number }) => {
      throw err.statusCode === 404 ? new AgentError('image_not_found', `no image ${ref.familiar} on this robot`) : err;
    });
    // Written aside and renamed, so a half-written tar never sits under the final name.
    const partial = `${target}.partial`;
    try {
      const stream = (await docker.getImage(ref.familiar).get()) as NodeJS.ReadableStream;
      await pipeline(stream, createWriteStream(partial, { mode: 0o640 }));
      await rename(partial, target);
    } catch (err) {
      await rm(partial, { force: true });
      const message = (err as Error).message;
      throw new AgentError(message.includes('ENOSPC') ? 'disk_full' : 'save_failed', `saving ${ref.familiar} to ${target} failed: ${message}`);
    }
    return { image: ref.familiar, file: target, bytes: (await stat(target)).size };
  }

  /** Loads a `docker save` tar; names the config does not allow are untagged again. */
  async load(file: unknown): Promise<{ file: string; loaded: string[]; refused: string[] }> {
    const source = confinedPath(this.o.config.importDir, file, { mustExist: true, key: 'images.importDir' });
    const docker = this.o.docker();
    const output = (await docker.loadImage(createReadStream(source), { quiet: true })) as NodeJS.ReadableStream;
    const messages = await collect(output);
    const failure = messages.find((m) => m.error);
    if (failure) throw new AgentError('load_failed', `loading ${source} failed: ${failure.error}`);
    const names = messages.flatMap((m) => /^Loaded image(?: ID)?: (.+)$/.exec((m.stream ?? '').trim())?.[1] ?? []);
    const allowed = [...this.o.config.allow, ...this.o.config.pushAllow];
    const loaded: string[] = [];
    const refused: string[] = [];
    for (const name of names) {
      if (name.startsWith('sha256:')) {
        loaded.push(name);
        continue;
      }
      let ok = false;
      try {
        ok = isAllowed(parseImageReference(name), allowed);
      } catch {
        ok = false;
      }
      if (ok) loaded.push(name);
      else {
        refused.push(name);
        await docker.getImage(name).remove({ noprune: false }).catch(() => undefined);
      }
    }
    return { file: source, loaded, refused };
  }

  /** Makes an image from a root filesystem tar (`docker import`). */
  async import(ref: ImageReference, file: unknown): Promise<{ image: string; imageId: string; file: string }> {
    const source = confinedPath(this.o.config.importDir, file, { mustExist: true, key: 'images.importDir' });
    const docker = this.o.docker();
    const output = (await docker.importImage(createReadStream(source), { repo: ref.familiarRepository, tag: ref.tag ?? 'latest' })) as unknown as NodeJS.ReadableStream;
    const messages = await collect(output);
    const failure = messages.find((m) => m.error);
    if (failure) throw new AgentError('import_failed', `importing ${source} failed: ${failure.error}`);
    const inspect = (await docker.getImage(ref.familiar).inspect()) as { Id: string };
    return { image: ref.familiar, imageId: inspect.Id, file: source };
  }

  /** A build context as a tar stream, made by tar(1) so no file list is kept in memory. */
  static contextTar(dir: string): NodeJS.ReadableStream {
    const tar = spawn('tar', ['-C', dir, '-c', '.'], { stdio: ['ignore', 'pipe', 'ignore'] });
    return tar.stdout;
  }
}

async function collect(stream: NodeJS.ReadableStream): Promise<Array<{ stream?: string; error?: string; status?: string }>> {
  let text = '';
  for await (const chunk of stream) text += chunk.toString();
  return text
    .split(/\r?\n/)
    .filter((l) => l.trim())
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as { stream?: string; error?: string; status?: string }];
      } catch {
        return [{ stream: l }];
      }
    });
}
