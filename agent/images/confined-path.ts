import { existsSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { AgentError } from '../core/errors.js';

/**
 * A path a command names, confined to one directory of the local config: relative, no `..`
 * out, and no symlink (of the file or of any directory on the way) that leads out either.
 */
export function confinedPath(root: string, name: unknown, o: { mustExist: boolean; key: string }): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 4096 || name.includes('\0')) {
    throw new AgentError('bad_path', `a file name relative to ${o.key} is required`);
  }
  if (isAbsolute(name)) throw new AgentError('path_outside', `${name} must be relative to ${o.key} (${root})`);
  const rootReal = realOrSelf(root);
  const candidate = resolve(rootReal, name);
  if (!inside(rootReal, candidate)) throw new AgentError('path_outside', `${name} leads outside ${o.key} (${root})`);
  if (existsSync(candidate)) {
    const real = realpathSync(candidate);
    if (!inside(rootReal, real)) throw new AgentError('path_outside', `${name} is a link that leads outside ${o.key} (${root})`);
    return real;
  }
  if (o.mustExist) throw new AgentError('file_not_found', `no ${name} in ${o.key} (${root})`);
  const parent = dirname(candidate);
  if (!existsSync(parent)) throw new AgentError('file_not_found', `no directory ${relative(rootReal, parent) || '.'} in ${o.key} (${root})`);
  if (!inside(rootReal, realpathSync(parent))) throw new AgentError('path_outside', `${name} is under a link that leads outside ${o.key} (${root})`);
  return candidate;
}

function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

function realOrSelf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    throw new AgentError('file_not_found', `the directory ${path} does not exist on this robot`);
  }
}
