import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, fsyncSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../core/errors.js';

/** In state.dir: robot-fleet on the robot reads it from there (docs/operations.md). */
export const EMBEDDED_PASSWORD_FILE = 'embedded-broker.password';
/** A password is 43 characters; anything much longer in that file is not one of ours. */
const MAX_PASSWORD_BYTES = 1024;

/**
 * The embedded broker's password: read from <dir>/embedded-broker.password, or made on first
 * start (32 random bytes, base64url). The file is created exclusively with mode 0600 and never
 * opened through a symbolic link: anyone who could plant a link there could otherwise make a
 * root process write the password where they read it, or read one they chose.
 */
export function embeddedPassword(dir: string): string {
  const file = join(dir, EMBEDDED_PASSWORD_FILE);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new AgentError('state_dir', `cannot create the state directory ${dir}: ${why}`);
  }
  // Two tries: another process may create the file between our read and our create.
  for (let attempt = 0; ; attempt += 1) {
    const existing = readPasswordFile(file);
    if (existing !== undefined) return existing;
    const password = randomBytes(32).toString('base64url');
    let fd: number;
    try {
      fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && attempt === 0) continue;
      throw fileError(file, err);
    }
    try {
      writeSync(fd, `${password}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return password;
  }
}

/** The password in the file, or undefined when there is no file; refuses a link, a foreign or readable file. */
function readPasswordFile(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fileError(file, err);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw refuse(file, 'is not a regular file');
    const uid = process.getuid?.();
    if (uid !== undefined && stat.uid !== uid) {
      throw refuse(file, `belongs to uid ${stat.uid}, not to the agent (uid ${uid})`);
    }
    if ((stat.mode & 0o077) !== 0) {
      throw refuse(file, `has mode ${(stat.mode & 0o777).toString(8).padStart(4, '0')}; it must be 0600`);
    }
    const buffer = Buffer.alloc(MAX_PASSWORD_BYTES + 1);
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    if (length > MAX_PASSWORD_BYTES) throw refuse(file, `is over ${MAX_PASSWORD_BYTES} bytes`);
    const password = buffer
      .subarray(0, length)
      .toString('utf8')
      .replace(/\r?\n$/, '');
    if (password === '') throw refuse(file, 'is empty');
    return password;
  } finally {
    closeSync(fd);
  }
}

function refuse(file: string, why: string): AgentError {
  return new AgentError(
    'embedded_password_file',
    `the embedded broker's password file ${file} ${why}; ` +
      'remove it (the agent makes a new one) or fix it, then restart the agent',
  );
}

function fileError(file: string, err: unknown): AgentError {
  const code = (err as NodeJS.ErrnoException).code;
  // O_NOFOLLOW on a symbolic link fails with ELOOP.
  if (code === 'ELOOP') return refuse(file, 'is a symbolic link');
  const why = code ?? (err as Error).message;
  return new AgentError('embedded_password_file', `cannot use the embedded broker's password file ${file}: ${why}`);
}
