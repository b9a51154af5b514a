import { spawn } from 'node:child_process';
import {
  closeSync,
  createReadStream,
  createWriteStream,
  lstatSync,
  readdirSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { statfs } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AgentConfig } from '../config/types.js';
import {
  confinedEntry,
  createConfinedTemp,
  openConfinedRead,
  PARTIAL_SUFFIX,
  syncDirectory,
  type ConfinedRoot,
} from '../core/confined-files.js';
import { AgentError } from '../core/errors.js';
import { engineMessage, refusedAs, type Engine } from '../docker/engine.js';
import { readArchiveNames } from './image-archive.js';
import { isAllowed, parseImageReference, type ImageReference } from '../core/image-reference.js';

/** The most entries walked in images.exportDir (to measure it) or in a build context (to check it). */
export const MAX_WALK_ENTRIES = 100_000;
/** The most files `files` lists. */
export const MAX_LISTED_FILES = 1000;

export interface ExportListing {
  dir: string;
  files: SavedFile[];
  truncated: boolean;
  bytes: number;
  maxBytes: number;
  diskFree: number | null;
}

export interface SavedFile {
  file: string;
  bytes: number;
  modified: string;
  /** A save still being written, or one a crash left behind. */
  partial: boolean;
}

/**
 * Images as files, for robots without a registry: `docker save` into the export directory,
 * `docker load` and `docker import` from the import directory (a USB stick), nowhere else.
 * Every file goes through core/confined-files.ts. One instance per agent: it counts the saves
 * in flight against images.exportMaxBytes.
 */
export class ImageFiles {
  /** Bytes each save in flight may still write, by temp path. */
  private readonly inFlight = new Map<string, number>();

  constructor(private readonly o: { engine: Engine; config: AgentConfig['images'] }) {}

  private get exportRoot(): ConfinedRoot {
    return { dir: this.o.config.exportDir, key: 'images.exportDir' };
  }

  private get importRoot(): ConfinedRoot {
    return { dir: this.o.config.importDir, key: 'images.importDir' };
  }

  /** Checks a file name for a save before any work (the snapshot checks it before its commit). */
  checkSaveName(file: unknown): string {
    const path = confinedEntry(this.exportRoot, file);
    if (lstatOrUndefined(path)) {
      throw new AgentError('file_exists', `${String(file)} already exists in images.exportDir; choose another name`);
    }
    return path;
  }

  /**
   * What a snapshot can check before its commit, when the size of the tar is not known yet: the
   * name, and that the export directory has any room at all.
   */
  async checkSave(file: unknown): Promise<void> {
    this.checkSaveName(file);
    const room = await this.room();
    if (room.quota === 0) {
      throw new AgentError(
        'export_full',
        `images.exportDir holds ${room.used} bytes, its limit (images.exportMaxBytes ` +
          `${this.o.config.exportMaxBytes}): remove saved files with files.remove`,
      );
    }
    if (room.disk === 0) {
      throw new AgentError(
        'disk_full',
        `the disk of images.exportDir has no room beyond the ${this.o.config.diskReserve}-byte reserve ` +
          `(images.diskReserve)`,
      );
    }
  }

  async save(ref: ImageReference, file: unknown): Promise<{ image: string; file: string; bytes: number }> {
    this.checkSaveName(file);
    const engine = this.o.engine;
    const image = await engine.inspectImage(ref.familiar);
    if (!image) throw new AgentError('image_not_found', `no image ${ref.familiar} on this robot`);
    // The tar is about the image's uncompressed size: refused before a byte is written when it cannot fit.
    const estimate = image.Size ?? 0;
    const room = await this.room();
    if (estimate > room.quota) {
      throw new AgentError(
        'export_full',
        `${ref.familiar} needs about ${estimate} bytes; images.exportDir holds ${room.used} of its ` +
          `${this.o.config.exportMaxBytes}-byte limit (images.exportMaxBytes): remove saved files with files.remove`,
      );
    }
    if (room.disk !== null && estimate > room.disk) {
      throw new AgentError(
        'disk_full',
        `${ref.familiar} needs about ${estimate} bytes; the disk of images.exportDir has ${room.disk} free beyond ` +
          `the ${this.o.config.diskReserve}-byte reserve (images.diskReserve)`,
      );
    }
    const limit = Math.min(room.quota, room.disk ?? Number.MAX_SAFE_INTEGER);
    const temp = createConfinedTemp(this.exportRoot, file);
    this.inFlight.set(temp.tempPath, estimate);
    try {
      const stream = await engine.saveImage(ref.familiar);
      let written = 0;
      // A tar larger than its estimate still stops at the limit: the disk is never filled.
      const meter = new Transform({
        transform: (chunk: Buffer, _enc, done) => {
          written += chunk.length;
          this.inFlight.set(temp.tempPath, Math.max(0, estimate - written));
          if (written <= limit) {
            done(null, chunk);
            return;
          }
          const why =
            `saving ${ref.familiar} stopped at ${limit} bytes, the room left in images.exportDir` +
            ' (images.exportMaxBytes, images.diskReserve)';
          done(new AgentError('export_full', why));
        },
      });
      await pipeline(stream, meter, createWriteStream('', { fd: temp.fd, autoClose: false }));
      temp.commit();
      return { image: ref.familiar, file: temp.path, bytes: written };
    } catch (err) {
      temp.discard();
      if (err instanceof AgentError) throw err;
      // The engine's own sentence for its refusal, the error's message for a disk that filled.
      const message = engineMessage(err);
      const code = message.includes('ENOSPC') ? 'disk_full' : 'save_failed';
      throw new AgentError(code, `saving ${ref.familiar} to ${String(file)} failed: ${message}`);
    } finally {
      this.inFlight.delete(temp.tempPath);
    }
  }

  /**
   * Loads a `docker save` tar. The names it would give are read from the tar first: one outside
   * images.allow and images.pushAllow refuses the whole load, since Docker would move that name
   * off whatever local image has it now. Names reported after the load that are not allowed are
   * still untagged (the file may have changed while the engine read it).
   */
  async load(file: unknown): Promise<{ file: string; loaded: string[]; refused: string[] }> {
    const opened = openConfinedRead(this.importRoot, file);
    const allowed = [...this.o.config.allow, ...this.o.config.pushAllow];
    const permitted = (name: string) => {
      try {
        return isAllowed(parseImageReference(name), allowed);
      } catch {
        return false;
      }
    };
    let output: NodeJS.ReadableStream;
    const engine = this.o.engine;
    let input: ReturnType<typeof readStream> | undefined;
    try {
      const names = readArchiveNames(opened.fd, opened.stats.size, String(file));
      const outside = names.filter((n) => !permitted(n));
      if (outside.length > 0) {
        throw new AgentError(
          'not_allowed',
          `${String(file)} would name ${outside.slice(0, 10).join(', ')}, not allowed on this robot (images.allow ` +
            `and images.pushAllow); nothing was loaded`,
        );
      }
      input = readStream(opened.fd);
      output = await engine.loadImage(input).catch(refusedAs('load_failed', `the load of ${opened.path}`));
    } catch (err) {
      if (input) input.destroy();
      else closeQuietly(opened.fd);
      throw err;
    }
    const messages = await collect(output);
    const failure = messages.find((m) => m.error);
    if (failure) throw new AgentError('load_failed', `loading ${opened.path} failed: ${failure.error}`);
    const names = messages.flatMap((m) => /^Loaded image(?: ID)?: (.+)$/.exec((m.stream ?? '').trim())?.[1] ?? []);
    const loaded: string[] = [];
    const refused: string[] = [];
    for (const name of names) {
      if (name.startsWith('sha256:') || permitted(name)) {
        loaded.push(name);
        continue;
      }
      refused.push(name);
      await engine.removeImage(name, { noprune: false }).catch(() => undefined);
    }
    return { file: opened.path, loaded, refused };
  }

  /** Makes an image from a root filesystem tar (`docker import`). */
  async import(ref: ImageReference, file: unknown): Promise<{ image: string; imageId: string; file: string }> {
    const opened = openConfinedRead(this.importRoot, file);
    const engine = this.o.engine;
    let output: NodeJS.ReadableStream;
    const input = readStream(opened.fd);
    try {
      const options = { repo: ref.familiarRepository, tag: ref.tag ?? 'latest' };
      output = await engine
        .importImage(input, options)
        .catch(refusedAs('import_failed', `the import of ${opened.path}`));
    } catch (err) {
      input.destroy();
      throw err;
    }
    const messages = await collect(output);
    const failure = messages.find((m) => m.error);
    if (failure) throw new AgentError('import_failed', `importing ${opened.path} failed: ${failure.error}`);
    const inspect = await engine.inspectImage(ref.familiar);
    if (!inspect) throw new AgentError('import_failed', `importing ${opened.path} made no image ${ref.familiar}`);
    return { image: ref.familiar, imageId: inspect.Id, file: opened.path };
  }

  /** What images.exportDir holds: every regular file under it (links are not followed), and the limits. */
  async list(): Promise<ExportListing> {
    const root = this.o.config.exportDir;
    const walked = walk(root);
    const files = walked.files.sort((a, b) => a.file.localeCompare(b.file)).slice(0, MAX_LISTED_FILES);
    return {
      dir: root,
      files,
      truncated: walked.files.length > MAX_LISTED_FILES || walked.truncated,
      bytes: walked.bytes,
      maxBytes: this.o.config.exportMaxBytes,
      diskFree: await freeBytes(root),
    };
  }

  /** Removes one file from images.exportDir (a link is removed itself, never its target). */
  async remove(file: unknown): Promise<{ file: string; bytes: number }> {
    const path = confinedEntry(this.exportRoot, file);
    const st = lstatOrUndefined(path);
    if (!st) throw new AgentError('file_not_found', `no ${String(file)} in images.exportDir`);
    if (st.isDirectory()) {
      throw new AgentError('bad_path', `${String(file)} is a directory; files.remove removes files`);
    }
    if (this.inFlight.has(path)) throw new AgentError('in_use', `${String(file)} is a save still being written`);
    unlinkSync(path);
    syncDirectory(join(path, '..'));
    return { file: path, bytes: st.isFile() ? st.size : 0 };
  }

  /** Bytes a save may still write: under images.exportMaxBytes, and on the disk beyond images.diskReserve. */
  private async room(): Promise<{ used: number; quota: number; disk: number | null }> {
    const walked = walk(this.o.config.exportDir);
    if (walked.truncated) {
      throw new AgentError(
        'export_full',
        `images.exportDir holds more than ${MAX_WALK_ENTRIES} entries: remove files first`,
      );
    }
    const reserved = [...this.inFlight.values()].reduce((s, n) => s + n, 0);
    const used = walked.bytes + reserved;
    const free = await freeBytes(this.o.config.exportDir);
    return {
      used,
      quota: Math.max(0, this.o.config.exportMaxBytes - used),
      disk: free === null ? null : Math.max(0, free - reserved - this.o.config.diskReserve),
    };
  }

  /**
   * A build context as a tar stream, made by tar(1) so no file list is kept in memory. tar does
   * not follow symlinks (it stores them, and the engine resolves them inside the context), but
   * a hard link is a file like any other: one to a file outside buildDir would send its content,
   * so a context with hard links is refused. tar runs in the directory already opened and
   * checked (through /proc/self/fd), so a directory swapped for a link since is not followed.
   */
  static contextTar(root: ConfinedRoot, context: unknown): { path: string; stream: NodeJS.ReadableStream } {
    const opened = openConfinedRead(root, context, { directory: true });
    try {
      checkContext(opened.path);
      const tar = spawn('tar', ['-C', '/proc/self/fd/3', '--one-file-system', '-c', '.'], {
        stdio: ['ignore', 'pipe', 'ignore', opened.fd],
      });
      return { path: opened.path, stream: tar.stdout! };
    } finally {
      // The child has its own copy of the descriptor.
      closeQuietly(opened.fd);
    }
  }
}

/** Refuses a build context holding hard links or too many entries (links are not followed). */
function checkContext(dir: string): void {
  let count = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const current = stack.pop()!;
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      count += 1;
      if (count > MAX_WALK_ENTRIES) {
        throw new AgentError('context_too_large', `the build context holds more than ${MAX_WALK_ENTRIES} entries`);
      }
      const path = join(current, entry.name);
      if (entry.isDirectory()) stack.push(path);
      else if (entry.isFile() && lstatSync(path).nlink > 1) {
        throw new AgentError(
          'path_outside',
          `${relative(dir, path)} in the build context has hard links; one may be outside images.buildDir: copy ` +
            `the file instead`,
        );
      }
    }
  }
}

function walk(root: string): { files: SavedFile[]; bytes: number; truncated: boolean } {
  const files: SavedFile[] = [];
  let bytes = 0;
  let count = 0;
  const stack = [root];
  while (stack.length > 0) {
    const current = stack.pop()!;
    let entries;
    try {
      entries = readdirSync(current, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      count += 1;
      if (count > MAX_WALK_ENTRIES) return { files, bytes, truncated: true };
      const path = join(current, entry.name);
      if (entry.isDirectory()) stack.push(path);
      else if (entry.isFile()) {
        const st = lstatOrUndefined(path);
        if (!st) continue;
        bytes += st.size;
        const partial = basename(path).endsWith(PARTIAL_SUFFIX);
        files.push({ file: relative(root, path), bytes: st.size, modified: st.mtime.toISOString(), partial });
      }
    }
  }
  return { files, bytes, truncated: false };
}

async function freeBytes(path: string): Promise<number | null> {
  try {
    const s = await statfs(path);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/**
 * The whole of an opened file, from its start, for the engine. A read error (a USB stick pulled
 * out) must not become an uncaught 'error' event that ends the daemon: the engine then sees a
 * short body and fails the load, which is reported.
 */
function readStream(fd: number): ReturnType<typeof createReadStream> {
  const stream = createReadStream('', { fd, start: 0, autoClose: true });
  stream.on('error', () => undefined);
  return stream;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closed by its stream already.
  }
}

/** The most of the engine's answer to a load or import kept (it is a few lines per image). */
const MAX_ENGINE_OUTPUT = 1024 * 1024;

type EngineMessage = { stream?: string; error?: string; status?: string };

async function collect(stream: NodeJS.ReadableStream): Promise<EngineMessage[]> {
  let text = '';
  for await (const chunk of stream) if (text.length < MAX_ENGINE_OUTPUT) text += chunk.toString();
  return text
    .split(/\r?\n/)
    .filter((l) => l.trim())
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as EngineMessage];
      } catch {
        return [{ stream: l }];
      }
    });
}
