// Bundles the dashboard page (preact + htm, agent/fleet/dashboard/page/) into build/dashboard/ with
// esbuild: one script, one stylesheet, one HTML file, shipped in the package; no CDN at run time.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'agent', 'fleet', 'dashboard', 'page');
const out = join(root, 'build', 'dashboard');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(src, 'app.js')],
  outfile: join(out, 'app.js'),
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome100', 'firefox100', 'safari15'],
  legalComments: 'none',
  logLevel: 'warning',
});
for (const f of ['index.html', 'app.css']) copyFileSync(join(src, f), join(out, f));
