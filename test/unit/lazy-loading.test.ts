import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../../agent/package-root.js';

/**
 * Imports the agent's composition root and main in a fresh node whose module resolver refuses the
 * given packages: the import succeeds only if none of them is loaded before it is used.
 */
function importRefusing(packages: string[]): { status: number | null; stderr: string } {
  const hook = `export async function resolve(s, c, n) {
    if (${JSON.stringify(packages)}.includes(s)) throw new Error('loaded at start-up: ' + s);
    return n(s, c);
  }`;
  const app = pathToFileURL(join(packageRoot(), 'build', 'agent', 'app.js')).href;
  const script = `
    import { register } from 'node:module';
    register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
    await import(${JSON.stringify(app)});
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15_000 });
  return { status: r.status, stderr: r.stderr };
}

/** What a robot idles with is resident memory: load a dependency only when it is used (issue 14). */
describe('lazy loading: the agent loads what it uses', () => {
  it('the embedded broker (aedes) is not loaded by the composition root, only when it starts', () => {
    const r = importRefusing(['aedes']);
    assert.equal(r.status, 0, r.stderr);
  });

  it('the check itself works: a package the agent imports at start is refused', () => {
    const r = importRefusing(['dockerode']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /loaded at start-up: dockerode/);
  });
});
