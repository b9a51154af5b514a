import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { envLeaves } from '../../agent/config/env-overrides.js';
import { loadConfigSchema } from '../../agent/config/load-config.js';
import { packageRoot } from '../../agent/core/package-root.js';

/** Issue 18.7: slips a newcomer trips over in the docs and scripts. */
describe('docs and scripts: no slips', () => {
  const read = (path: string) => readFileSync(join(packageRoot(), path), 'utf8');

  it('the "Every key" table of docs/configuration.md is one table holding every key\'s variable', () => {
    const lines = read('docs/configuration.md').split('\n');
    const start = lines.findIndex((l) => l.startsWith('| key |'));
    assert.ok(start > 0);
    // Markdown ends a table at the first line that is not a row: a blank line hid half of it.
    const end = lines.findIndex((l, i) => i > start && !l.startsWith('|'));
    const table = lines.slice(start, end).join('\n');
    const missing = envLeaves(loadConfigSchema() as object)
      .filter((leaf) => !leaf.path.some((p) => p === 'containers' || p === 'registries'))
      .filter((leaf) => !table.includes(`\`${leaf.envName}\``))
      .map((leaf) => leaf.envName);
    assert.deepEqual(missing, []);
    for (const key of ['reconcile.interval', 'update.lockFile', 'snapshots.keep', 'containers.<name>.image']) {
      assert.ok(table.includes(`| \`${key}\` |`), `${key} is in the table`);
    }
  });

  it('every relative link in README.md and docs/*.md points to a file of the repository', () => {
    const files = [
      'README.md',
      ...[
        'configuration',
        'containers',
        'devices',
        'fleet-broker',
        'images',
        'mqtt-api',
        'operations',
        'security',
        'snapshots',
        'updates',
      ].map((d) => `docs/${d}.md`),
    ];
    const broken: string[] = [];
    for (const file of files) {
      if (!existsSync(join(packageRoot(), file))) continue;
      const text = read(file);
      for (const match of text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)|`(\.\.\/[^`\s]+)`/g)) {
        const target = match[1] ?? match[3]!;
        if (/^[a-z]+:/.test(target)) continue;
        if (!existsSync(resolve(dirname(join(packageRoot(), file)), target))) broken.push(`${file}: ${target}`);
      }
    }
    assert.deepEqual(broken, []);
  });
});
