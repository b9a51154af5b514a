import { confinedName } from '../core/confined-files.js';

/**
 * A path a command names, confined to one directory of the local config: relative, no `..`
 * out, and no symlink (of the file or of any directory on the way) that leads out either.
 * Only a check: whatever is then opened goes through core/confined-files.ts, which checks the
 * opened file again.
 */
export function confinedPath(root: string, name: unknown, o: { mustExist: boolean; key: string }): string {
  return confinedName({ dir: root, key: o.key }, name, { mustExist: o.mustExist });
}
