import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  lstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  renameSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { AgentError } from './errors.js';

/**
 * Every file the agent reads or writes in a directory others can write to (images.exportDir,
 * importDir, buildDir) or that holds its own state (state.dir) goes through here, so that no
 * symlink, hard link or file planted in advance can redirect a root process:
 *  - a name is relative, and every component of it, links resolved, stays inside the root;
 *  - files are opened with O_NOFOLLOW, and what was opened is checked again through
 *    /proc/self/fd (a directory swapped for a link between the check and the open is caught);
 *  - new files are temp files the agent creates itself (O_CREAT|O_EXCL|O_NOFOLLOW, a random
 *    name), so nothing planted is ever written through, then renamed over the final name:
 *    rename(2) replaces a link or a hard link as a directory entry and never writes to its
 *    target; the directory is fsynced after.
 */

/** Longest name accepted from a command (PATH_MAX). */
export const MAX_NAME_LENGTH = 4096;

export interface ConfinedRoot {
  /** The directory as configured. */
  dir: string;
  /** The config key, for messages: images.exportDir. */
  key: string;
}

const O_NOFOLLOW = constants.O_NOFOLLOW;

/**
 * A name resolved inside root: the real path of the file (which may not exist yet), with no link
 * on the way that leads out. Does not open anything.
 */
export function confinedName(root: ConfinedRoot, name: unknown, o: { mustExist: boolean }): string {
  const { rootReal, target } = locate(root, name);
  const st = lstatOrUndefined(target);
  if (st?.isSymbolicLink()) {
    let real: string;
    try {
      real = realpathSync(target);
    } catch {
      throw new AgentError('path_outside', `${String(name)} is a dangling link in ${root.key} (${root.dir})`);
    }
    if (!isInside(rootReal, real)) {
      throw new AgentError('path_outside', `${String(name)} is a link that leads outside ${root.key} (${root.dir})`);
    }
    return real;
  }
  if (!st && o.mustExist) throw new AgentError('file_not_found', `no ${String(name)} in ${root.key} (${root.dir})`);
  return target;
}

/** The name checked and resolved up to its last component, which is left as it is. */
function locate(root: ConfinedRoot, name: unknown): { rootReal: string; target: string } {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH || name.includes('\0')) {
    throw new AgentError(
      'bad_path',
      `a file name relative to ${root.key} is required (1 to ${MAX_NAME_LENGTH} characters)`,
    );
  }
  if (isAbsolute(name)) throw new AgentError('path_outside', `${name} must be relative to ${root.key} (${root.dir})`);
  const rootReal = realRoot(root);
  const candidate = resolve(rootReal, name);
  if (!isInside(rootReal, candidate)) {
    throw new AgentError('path_outside', `${name} leads outside ${root.key} (${root.dir})`);
  }
  if (candidate === rootReal) return { rootReal, target: rootReal };
  const parent = dirname(candidate);
  let parentReal: string;
  try {
    parentReal = realpathSync(parent);
  } catch {
    throw new AgentError(
      'file_not_found',
      `no directory ${relative(rootReal, parent) || '.'} in ${root.key} (${root.dir})`,
    );
  }
  if (!isInside(rootReal, parentReal)) {
    throw new AgentError('path_outside', `${name} is under a link that leads outside ${root.key} (${root.dir})`);
  }
  return { rootReal, target: join(parentReal, basename(candidate)) };
}

/**
 * Opens a file inside root for reading: O_NOFOLLOW, a regular file (or a directory when asked),
 * and the opened inode really inside root. A regular file with more than one hard link is
 * refused: the other name may be outside root, which no path check can see.
 */
export function openConfinedRead(
  root: ConfinedRoot,
  name: unknown,
  o: { directory?: boolean; maxBytes?: number } = {},
): { fd: number; path: string; stats: Stats } {
  const path = confinedName(root, name, { mustExist: true });
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | O_NOFOLLOW | (o.directory ? constants.O_DIRECTORY : 0));
  } catch (err) {
    throw openError(err, root, String(name));
  }
  try {
    const stats = fstatSync(fd);
    assertOpenedInside(fd, realRoot(root), root, String(name));
    if (o.directory) {
      if (!stats.isDirectory()) throw new AgentError('bad_path', `${String(name)} in ${root.key} is not a directory`);
    } else {
      if (!stats.isFile()) throw new AgentError('bad_path', `${String(name)} in ${root.key} is not a regular file`);
      if (stats.nlink > 1) {
        throw new AgentError(
          'path_outside',
          `${String(name)} in ${root.key} has ${stats.nlink} hard links; one may be outside ${root.dir}: copy the file instead`,
        );
      }
      if (o.maxBytes !== undefined && stats.size > o.maxBytes) {
        throw new AgentError(
          'file_too_large',
          `${String(name)} in ${root.key} is ${stats.size} bytes; at most ${o.maxBytes} are read`,
        );
      }
    }
    return { fd, path, stats };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** A temp file the agent created itself next to its final name, and how to finish or drop it. */
export interface ConfinedTemp {
  fd: number;
  /** The temp file's path (.<final>.<random>.partial). */
  tempPath: string;
  /** The final path. */
  path: string;
  /** fsync, close, and rename over the final name; then fsync the directory. */
  commit(o?: { replace?: boolean }): void;
  /** Closes and removes the temp file (never throws). */
  discard(): void;
}

/** Suffix of every temp file: `files` lists them as partial and a crash may leave them behind. */
export const PARTIAL_SUFFIX = '.partial';

/**
 * Creates a temp file for `name` inside root. With replace false (the default) the final name must
 * not exist at all, as a file, link or directory; with replace true it may be a regular file, which
 * the rename replaces as a directory entry (a hard link to it elsewhere keeps the old content).
 */
export function createConfinedTemp(
  root: ConfinedRoot,
  name: unknown,
  o: { replace?: boolean; mode?: number } = {},
): ConfinedTemp {
  const path = confinedFinalName(root, name);
  checkFinal(root, path, String(name), o.replace ?? false);
  const tempPath = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}${PARTIAL_SUFFIX}`);
  let fd: number;
  try {
    fd = openSync(tempPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW, o.mode ?? 0o640);
  } catch (err) {
    throw openError(err, root, String(name));
  }
  let open = true;
  const close = () => {
    if (open) {
      open = false;
      closeSync(fd);
    }
  };
  try {
    assertOpenedInside(fd, realRoot(root), root, String(name));
  } catch (err) {
    close();
    // Ours (O_EXCL): safe to remove by the name it was created under, wherever that led.
    try {
      unlinkSync(tempPath);
    } catch {
      // Already gone.
    }
    throw err;
  }
  return {
    fd,
    tempPath,
    path,
    commit(c = {}) {
      fsyncSync(fd);
      close();
      // Checked again just before the rename: the name may have been taken while we wrote.
      checkFinal(root, path, String(name), c.replace ?? o.replace ?? false);
      renameSync(tempPath, path);
      syncDirectory(dirname(path));
    },
    discard() {
      try {
        close();
      } catch {
        // Closed already.
      }
      try {
        unlinkSync(tempPath);
      } catch {
        // Never made or already renamed.
      }
    },
  };
}

/** fsync of a directory, so a rename in it survives a power cut. */
export function syncDirectory(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function isInside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * A directory entry inside root, itself not resolved (a link stays the link): its directory's
 * real path and its own name. What is created, renamed over or removed by name.
 */
export function confinedEntry(root: ConfinedRoot, name: unknown): string {
  return confinedFinalName(root, name);
}

function confinedFinalName(root: ConfinedRoot, name: unknown): string {
  if (typeof name === 'string' && (name.endsWith('/') || name === '.' || basename(name) === '..')) {
    throw new AgentError('bad_path', `${name} names a directory in ${root.key}; a file name is required`);
  }
  const { rootReal, target } = locate(root, name);
  if (target === rootReal) {
    throw new AgentError('bad_path', `${String(name)} names ${root.key} itself; a file name is required`);
  }
  return target;
}

function checkFinal(root: ConfinedRoot, path: string, name: string, replace: boolean): void {
  const st = lstatOrUndefined(path);
  if (!st) return;
  if (!replace) {
    throw new AgentError('file_exists', `${name} already exists in ${root.key} (${root.dir}); choose another name`);
  }
  // A link is not replaced either: whoever planted it meant something, and the operator should see it.
  if (!st.isFile()) {
    throw new AgentError(
      'bad_path',
      `${name} in ${root.key} is not a regular file (a link or a directory); remove it first`,
    );
  }
}

/** The real path behind an open descriptor must lie inside root (Linux /proc; elsewhere an inode check). */
function assertOpenedInside(fd: number, rootReal: string, root: ConfinedRoot, name: string): void {
  let opened: string | undefined;
  try {
    opened = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    opened = undefined;
  }
  if (opened !== undefined) {
    if (!isInside(rootReal, opened)) {
      throw new AgentError('path_outside', `${name} leads outside ${root.key} (${root.dir})`);
    }
    return;
  }
  throw new AgentError('unsupported', 'confined file access needs /proc/self/fd (Linux)');
}

function realRoot(root: ConfinedRoot): string {
  try {
    return realpathSync(root.dir);
  } catch {
    throw new AgentError('file_not_found', `the directory ${root.dir} (${root.key}) does not exist on this robot`);
  }
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function openError(err: unknown, root: ConfinedRoot, name: string): AgentError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') return new AgentError('path_outside', `${name} in ${root.key} became a link; refused`);
  if (code === 'ENOENT') return new AgentError('file_not_found', `no ${name} in ${root.key} (${root.dir})`);
  if (code === 'EEXIST') {
    return new AgentError('file_exists', `${name} in ${root.key} appeared while being written; try again`);
  }
  if (code === 'ENOTDIR') return new AgentError('bad_path', `${name} in ${root.key} is not a directory`);
  if (code === 'ENOSPC') return new AgentError('disk_full', `no space left in ${root.key} (${root.dir})`);
  return new AgentError(
    'file_error',
    `cannot open ${name} in ${root.key} (${root.dir}): ${code ?? (err as Error).message}`,
  );
}
