import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../../agent/core/package-root.js';
import { scaled } from '../helpers/time-scale.js';

/**
 * Only a guard against a hung import, stretched where the Node is emulated (scripts/test-arm64.sh:
 * an import there took 40 to 75 s on a loaded machine, against 1 s natively).
 */
const IMPORT_GUARD_MS = scaled(45_000);

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
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: IMPORT_GUARD_MS,
  });
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

/** Imports the agent in a fresh node and reports which CommonJS files it loaded, then runs `then`. */
function loadedAfterImport(then = ''): { status: number | null; stdout: string; stderr: string } {
  const app = pathToFileURL(join(packageRoot(), 'build', 'agent', 'app.js')).href;
  const script = `
    import { createRequire } from 'node:module';
    const require = createRequire(${JSON.stringify(app)});
    const loaded = () => Object.keys(require.cache).filter((f) => /node_modules\\/(@grpc|ssh2)\\//.test(f)).length;
    await import(${JSON.stringify(app)});
    console.log('heavy before use: ' + loaded());
    ${then}
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: IMPORT_GUARD_MS,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("lazy loading: dockerode's BuildKit session (gRPC) and docker-modem's ssh2", () => {
  it('are not loaded when the agent is', () => {
    const r = loadedAfterImport();
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /heavy before use: 0\n/);
  });

  it('still work when used: the first call loads the real code', () => {
    const r = loadedAfterImport(`
      const ssh = require(require.resolve('docker-modem/lib/ssh.js', { paths: [require.resolve('dockerode')] }));
      const agent = ssh({ host: '127.0.0.1' });
      console.log('agent: ' + (typeof agent.createConnection) + ', heavy after use: ' + (loaded() > 0));
      agent.destroy();
    `);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /agent: function, heavy after use: true/);
  });
});

describe('host metrics: read from /proc and /sys, nothing spawned, systeminformation not loaded', () => {
  it('five samples on this host: figures, no child process, no systeminformation module', () => {
    const hostMetrics = pathToFileURL(join(packageRoot(), 'build', 'agent', 'metrics', 'host-metrics.js')).href;
    const r = loadedAfterImport(`
      const { readFileSync } = await import('node:fs');
      const { HostMetricsSampler } = await import(${JSON.stringify(hostMetrics)});
      const childTicks = () => {
        const stat = readFileSync('/proc/self/stat', 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return Number(f[13]) + Number(f[14]);
      };
      const store = { get: () => ({ docker: { rootDir: null }, host: { metrics: null } }), update: () => undefined };
      const sampler = new HostMetricsSampler({ store, logger: { warn: () => undefined }, intervalMs: 30000, stateDir: '/' });
      const before = childTicks();
      let m;
      for (let i = 0; i < 5; i += 1) {
        await new Promise((r) => setTimeout(r, 50));
        m = await sampler.sample();
      }
      const si = Object.keys(require.cache).some((f) => f.includes('/node_modules/systeminformation/'));
      const ok = m.memory.total > 0 && m.memory.used > 0 && m.memory.available > 0 && typeof m.cpuLoad === 'number';
      console.log('figures: ' + ok + ', children ticks: ' + (childTicks() - before) + ', systeminformation: ' + si);
    `);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /figures: true, children ticks: 0, systeminformation: false\n/);
  });
});

/** Runs a module script in a fresh node with gc exposed; its stdout. */
function withGc(script: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 15_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('lazy loading: JSON Schema validators live only as long as their users keep them', () => {
  it('the config schema (compiled with defaults, once at start) is not kept: it is collected once dropped', async () => {
    const jsonSchema = pathToFileURL(join(packageRoot(), 'build', 'agent', 'core', 'json-schema.js')).href;
    const r = withGc(`
      const { compileSchema } = await import(${JSON.stringify(jsonSchema)});
      const refs = [];
      // In a function: a suspended top-level await would keep its block's values in its frame.
      (() => {
        const schema = { type: 'object', properties: { a: { type: 'integer', default: 1 } } };
        const check = compileSchema(schema, { useDefaults: true });
        const doc = {};
        if (!check(doc) || check({ a: 'x' })) throw new Error('the validator does not validate');
        refs.push(new WeakRef(schema));
      })();
      for (let i = 0; i < 5; i += 1) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
      console.log('kept: ' + refs.map((ref) => ref.deref() !== undefined).join(','));
    `);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /kept: false\n/);
  });

  it("a command's request validator is compiled when the command first comes, and refuses bad params", () => {
    const schemas = pathToFileURL(join(packageRoot(), 'build', 'agent', 'commands', 'command-schemas.js')).href;
    const r = withGc(`
      const { loadCommandSchemas } = await import(${JSON.stringify(schemas)});
      const s = loadCommandSchemas('logs');
      const compiled = () => Object.getOwnPropertyDescriptor(s, 'request').get !== undefined;
      console.log('lazy: ' + compiled() + ', refuses: ' + !s.request({ name: 5 }) + ', takes: ' + s.request({ name: 'ros' }));
    `);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /lazy: true, refuses: true, takes: true\n/);
  });
});
