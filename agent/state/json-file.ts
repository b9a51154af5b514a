import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { createConfinedTemp, syncDirectory } from '../core/confined-files.js';

/** The largest state file read back (the update history is the biggest, well under this). */
export const MAX_STATE_FILE_BYTES = 16 * 1024 * 1024;

/**
 * The agent's few files of its own in state.dir (the desired state, holds, the update journal
 * and history, snapshot records), read and written one way: replaced whole (a temp file the
 * agent creates exclusively under a random name, fsync, rename, fsync of the directory), so a
 * power cut leaves the old content or the new, never half, and nothing planted in the directory
 * (a link or hard link at the temp or the final name) is ever written through.
 */
export function readJsonFile<T>(file: string): T | undefined {
  let fd: number;
  try {
    // O_NOFOLLOW: a link planted under the name of a state file is not read through.
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_STATE_FILE_BYTES) return undefined;
    const buf = Buffer.alloc(st.size);
    let read = 0;
    while (read < st.size) {
      const n = readSync(fd, buf, read, st.size - read, read);
      if (n === 0) break;
      read += n;
    }
    return JSON.parse(buf.subarray(0, read).toString('utf8')) as T;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether anything is at that name (a link counts, and is not followed): a state file there that
 * readJsonFile cannot read is damaged or planted, which is not the same as none.
 */
export function stateFileExists(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

export function writeJsonFile(file: string, value: unknown): void {
  const root = { dir: dirname(file), key: 'state.dir' };
  const temp = createConfinedTemp(root, basename(file), { replace: true, mode: 0o600 });
  try {
    const data = Buffer.from(JSON.stringify(value));
    let written = 0;
    while (written < data.length) written += writeSync(temp.fd, data, written, data.length - written);
    temp.commit();
  } catch (err) {
    temp.discard();
    throw err;
  }
}

export function removeJsonFile(file: string): void {
  // rm of a link removes the link, never its target.
  rmSync(file, { force: true });
  syncDirectory(dirname(file));
}
