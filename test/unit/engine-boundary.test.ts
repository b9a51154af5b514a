import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout: the sources, not the build this test runs from (build/test/unit/). */
function checkoutRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'agent', 'app.ts'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('the agent sources are not above this test');
    dir = up;
  }
  return dir;
}
const ROOT = checkoutRoot();
const AGENT = join(ROOT, 'agent');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** Lines of agent/ matching `pattern`, as "file:line: text", outside the files `allowed` accepts. */
function offending(pattern: RegExp, allowed: (file: string, line: string) => boolean): string[] {
  return sources(AGENT).flatMap((path) => {
    const file = relative(ROOT, path);
    return readFileSync(path, 'utf8')
      .split('\n')
      .flatMap((line, i) => (pattern.test(line) && !allowed(file, line) ? [`${file}:${i + 1}: ${line.trim()}`] : []));
  });
}

describe('the Engine port is the only way to the engine (issue 13)', () => {
  it('finds the sources it checks', () => {
    assert.ok(sources(AGENT).some((p) => p.endsWith('dockerode-engine.ts')));
  });

  it('no file outside agent/docker/ imports dockerode or docker-modem (types included)', () => {
    const found = offending(/from ['"](dockerode|docker-modem)['"]|import\(['"]dockerode['"]\)/, (file) =>
      file.startsWith('agent/docker/'),
    );
    assert.deepEqual(found, []);
  });

  it("no module outside agent/docker/ calls the link's dockerode client itself", () => {
    const methods = ['getImage', 'getContainer', 'listImages', 'listContainers', 'createContainer', 'df', 'pull'];
    const more = ['buildImage', 'loadImage', 'importImage', 'getEvents', 'ping', 'modem'];
    const calls = new RegExp(`\\.(${[...methods, ...more].join('|')})\\b`);
    const found = offending(new RegExp(`\\bdocker(\\(\\))?${calls.source}`), (file) =>
      file.startsWith('agent/docker/'),
    );
    assert.deepEqual(found, []);
  });

  it('Engine API status codes are read only in dockerode-engine.ts (the rest sees outcomes, EngineError kinds)', () => {
    const found = offending(
      /\bstatusCode\b/,
      (file, line) =>
        file === 'agent/docker/dockerode-engine.ts' ||
        // EngineError carries the code it was made from; declaring it is not reading one.
        (file === 'agent/docker/engine.ts' && /readonly statusCode: number/.test(line)),
    );
    assert.deepEqual(found, []);
  });
});
