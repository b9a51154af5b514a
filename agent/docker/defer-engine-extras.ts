import { existsSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Imported for its effect, before dockerode and docker-modem: two of their files load big
 * libraries at the top that only features the agent never uses need, and that would otherwise
 * stay in memory on every robot for its whole life (issue 14, the cost of one robot):
 * - dockerode/lib/session.js: @grpc/grpc-js and @grpc/proto-loader, for BuildKit sessions
 *   (buildImage with a v2 authconfig);
 * - docker-modem/lib/ssh.js: ssh2, for a Docker host reached over ssh:// (the agent uses the socket).
 * Each exports a single function. Its entry in the CommonJS cache is taken by a stand-in that
 * loads the real file on its first call, so the features still work if ever used. Measured on
 * node 20 (import agent/app.js, after gc): heap 14.3 -> 10.5 MiB, RSS about 80 -> 74 MiB.
 * A dependency upgrade that moves these files only loses the saving: a path that is not there,
 * or already loaded, is left alone.
 */
const require = createRequire(import.meta.url);

type Fn = (this: unknown, ...args: unknown[]) => unknown;

export function deferOnFirstCall(file: string): boolean {
  if (!existsSync(file) || require.cache[file]) return false;
  let real: Fn | undefined;
  const standIn: Fn = function (this: unknown, ...args: unknown[]) {
    if (!real) {
      // Out of the way first, so that require() loads and caches the real file.
      delete require.cache[file];
      real = require(file) as Fn;
    }
    return real.apply(this, args);
  };
  const entry = new Module(file);
  entry.filename = file;
  entry.loaded = true;
  entry.exports = standIn;
  require.cache[file] = entry;
  return true;
}

/** Where the two files are for the dependencies the agent resolves; undefined when not found. */
export function engineExtrasFiles(): string[] {
  const files: string[] = [];
  try {
    files.push(join(dirname(require.resolve('dockerode')), 'session.js'));
  } catch {
    // dockerode missing: the engine link reports that on its own.
  }
  try {
    files.push(join(dirname(require.resolve('docker-modem')), 'ssh.js'));
  } catch {
    // Same for docker-modem.
  }
  return files;
}

for (const file of engineExtrasFiles()) deferOnFirstCall(file);
