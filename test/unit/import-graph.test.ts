import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { packageRoot } from '../../agent/core/package-root.js';

/**
 * Issue 13: no upward arrow in the import graph between agent/ folders. The layers, lowest first; a
 * file may import from its own folder and from the layers below its own. Folders on one layer are
 * peers and import nothing of each other. README.md ("Layout") says the same.
 *
 *   core                        pure helpers: errors, logger, backoff, queues, image names and cosign's format
 *   state, config               the store, the bus, the state directory; the config, its types and its key files
 *   docker, security, metrics, mqtt
 *                               the engine port; signatures and replay; host readings; the broker link and API
 *   commands                    the router and the command definition the modules below declare theirs with
 *   devices, images             the lidar and its nodes; references, registry, pulls, verification
 *   containers                  the loop that owns every container change, its journaled replacement
 *   update                      update policy and history (window, gates, verification)
 *   snapshot                    commit, push, retention; restore runs as an update
 *   fleet                       robot-fleet, the operator's CLI and dashboard (another program)
 *   . (agent/*.ts)              main.ts, app.ts (the composition root), supervisor.ts (runs what app.ts composes)
 */
const LAYERS: readonly (readonly string[])[] = [
  ['core'],
  ['state', 'config'],
  ['docker', 'security', 'metrics', 'mqtt'],
  ['commands'],
  ['devices', 'images'],
  ['containers'],
  ['update'],
  ['snapshot'],
  ['fleet'],
  ['.'],
];

interface Import {
  /** agent/-relative path of the importing file. */
  file: string;
  /** The specifier as written. */
  specifier: string;
  /** agent/-relative path it resolves to (may start with ../ when it leaves agent/). */
  target: string;
}

/** The folder of an agent/-relative path: its first segment, or '.' for agent/*.ts itself. */
function folderOf(path: string): string {
  const parts = path.split('/');
  return parts.length === 1 ? '.' : parts[0]!;
}

/** The relative specifiers of a file's imports, export-froms and import()s, as the compiler reads them. */
function relativeSpecifiers(source: string): string[] {
  return ts
    .preProcessFile(source, true, true)
    .importedFiles.map((f) => f.fileName)
    .filter((specifier) => specifier.startsWith('.'));
}

/** Every relative import, export-from and dynamic import() of every .ts file under agent/. */
function agentImports(agentDir: string): Import[] {
  const files = (readdirSync(agentDir, { recursive: true }) as string[])
    .map((p) => p.split(sep).join('/'))
    .filter((p) => p.endsWith('.ts'));
  return files.flatMap((file) => {
    return relativeSpecifiers(readFileSync(join(agentDir, file), 'utf8')).map((specifier) => ({
      file,
      specifier,
      target: relative(agentDir, resolve(agentDir, dirname(file), specifier))
        .split(sep)
        .join('/'),
    }));
  });
}

/** One sentence per import that runs upward, sideways between peers, out of agent/, or from an unplaced folder. */
function wrongArrows(imports: readonly Import[], layers: readonly (readonly string[])[]): string[] {
  const rank = new Map(layers.flatMap((folders, i) => folders.map((f) => [f, i] as const)));
  const problems: string[] = [];
  for (const i of imports) {
    const from = folderOf(i.file);
    const to = folderOf(i.target);
    const where = `agent/${i.file} imports '${i.specifier}'`;
    if (i.target.startsWith('../')) {
      problems.push(`${where}: outside agent/`);
      continue;
    }
    if (from === to) continue;
    const a = rank.get(from);
    const b = rank.get(to);
    if (a === undefined || b === undefined) {
      problems.push(`${where}: folder ${a === undefined ? from : to}/ is on no layer (add it to LAYERS and README)`);
    } else if (b > a) {
      problems.push(`${where}: upward, ${from}/ (layer ${a}) -> ${to}/ (layer ${b})`);
    } else if (b === a) {
      problems.push(`${where}: sideways, ${from}/ and ${to}/ are peers on layer ${a}`);
    }
  }
  return problems;
}

/** Cycles between folders (strongly connected sets of more than one folder), whatever the layers say. */
function folderCycles(imports: readonly Import[]): string[][] {
  const edges = new Map<string, Set<string>>();
  for (const i of imports) {
    const from = folderOf(i.file);
    const to = folderOf(i.target);
    if (from === to || i.target.startsWith('../')) continue;
    if (!edges.has(from)) edges.set(from, new Set());
    if (!edges.has(to)) edges.set(to, new Set());
    edges.get(from)!.add(to);
  }
  // Tarjan's algorithm: a handful of folders, recursion is fine.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        component.push(w);
      } while (w !== v);
      if (component.length > 1) cycles.push(component.sort());
    }
  };
  for (const v of [...edges.keys()].sort()) if (!index.has(v)) visit(v);
  return cycles;
}

describe('import graph: no upward arrow between agent/ folders (issue 13)', () => {
  const agentDir = join(packageRoot(), 'agent');
  const imports = agentImports(agentDir);

  it('reads the imports of every agent/ file (static, type-only, export-from, import())', () => {
    assert.ok(imports.length > 300, `${imports.length} imports`);
    assert.ok(imports.some((i) => i.file === 'app.ts' && i.target === 'supervisor.js'));
    assert.ok(imports.some((i) => i.file === 'mqtt/topics.ts' && i.target === 'state/event-bus.js'));
    const source = [
      "import type { A } from '../a/a.js';",
      "export { B } from '../b/b.js';",
      "const c = await import('../c/c.js');",
      "import 'node:fs';",
    ].join('\n');
    assert.deepEqual(relativeSpecifiers(source), ['../a/a.js', '../b/b.js', '../c/c.js']);
  });

  it('places every agent/ folder on a layer', () => {
    const folders = new Set(
      readdirSync(agentDir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name),
    );
    const placed = new Set(LAYERS.flat());
    assert.deepEqual([...folders].filter((f) => !placed.has(f)).sort(), []);
    assert.deepEqual([...placed].filter((f) => f !== '.' && !folders.has(f)).sort(), []);
  });

  it('has no import that runs upward or sideways between folders', () => {
    const problems = wrongArrows(imports, LAYERS);
    assert.deepEqual(problems, [], `${problems.length} imports against the layers:\n${problems.join('\n')}`);
  });

  it('has no cycle between folders', () => {
    assert.deepEqual(folderCycles(imports), []);
  });

  it('names the file and the import of an arrow that goes up, and finds a cycle (the check itself)', () => {
    const fake: Import[] = [
      { file: 'state/summary.ts', specifier: '../mqtt/api-version.js', target: 'mqtt/api-version.js' },
      { file: 'mqtt/topics.ts', specifier: '../state/types.js', target: 'state/types.js' },
      { file: 'core/x.ts', specifier: '../../test/y.js', target: '../test/y.js' },
      { file: 'config/load.ts', specifier: '../state/json-file.js', target: 'state/json-file.js' },
      { file: 'robots/r.ts', specifier: '../core/errors.js', target: 'core/errors.js' },
    ];
    assert.deepEqual(wrongArrows(fake, LAYERS), [
      "agent/state/summary.ts imports '../mqtt/api-version.js': upward, state/ (layer 1) -> mqtt/ (layer 2)",
      "agent/core/x.ts imports '../../test/y.js': outside agent/",
      "agent/config/load.ts imports '../state/json-file.js': sideways, config/ and state/ are peers on layer 1",
      "agent/robots/r.ts imports '../core/errors.js': folder robots/ is on no layer (add it to LAYERS and README)",
    ]);
    assert.deepEqual(folderCycles(fake), [['mqtt', 'state']]);
  });
});
