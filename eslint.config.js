// The linter (issue 13): @eslint/js and typescript-eslint recommended, with the type-aware rules (a floating
// promise in a daemon is an unhandled rejection waiting to happen), over the agent, its tests and benches and
// the dashboard page. Layout is prettier's job (`npm run lint` runs both; no rule here fights it) except the
// line limit, which prettier does not enforce on comments and strings.
// test/integration/code-style.test.ts runs this in CI; the whole run takes ~25 s on two busy cores.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const LINE_LIMIT = {
  code: 120,
  // A URL, a long message or a command line in a template reads better whole than cut with `+`.
  ignoreUrls: true,
  ignoreStrings: true,
  ignoreTemplateLiterals: true,
  ignoreRegExpLiterals: true,
};

// The browser globals the dashboard page uses, listed rather than taken from a package: a new one is a choice.
const BROWSER_GLOBALS = Object.fromEntries(
  [
    'window',
    'document',
    'location',
    'console',
    'performance',
    'WebSocket',
    'setTimeout',
    'clearTimeout',
    'setInterval',
    'clearInterval',
    'requestAnimationFrame',
  ].map((name) => [name, 'readonly']),
);

export default tseslint.config(
  { ignores: ['build/', 'dist/', 'node_modules/', '.cache/', 'test-output/', '.rig/'] },
  {
    files: ['agent/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      'max-len': ['error', LINE_LIMIT],
      // The tree writes `!` on indexed access (`parts[0]!`) as though noUncheckedIndexedAccess were on: each
      // says "this index exists" (231 places). Without that compiler option the rule calls every one unneeded.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // Modules implement `start(): Promise<void>` and commands `run: async () => ...` without awaiting
      // anything: `async` is what turns a throw in them into a rejection their caller handles.
      '@typescript-eslint/require-await': 'off',
      // `const { secret: _secret, ...rest } = o` is how a field is left out of a copy.
      // `let hub; const runner = new Runner(() => hub?.x()); hub = new Hub(runner)`: a cycle, not a constant.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true, argsIgnorePattern: '^_' }],
    },
  },
  {
    // Tests read untyped JSON (CLI output, `docker inspect`, command results) and DOM nodes inside
    // puppeteer's callbacks (no DOM lib in tsconfig): the assertion that follows is the type check.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // The dashboard page: plain ES modules run by the browser, bundled by esbuild (scripts/build-page.mjs).
    files: ['agent/fleet/dashboard/page/**/*.js'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'module', ecmaVersion: 2022, globals: BROWSER_GLOBALS },
    rules: { 'max-len': ['error', LINE_LIMIT] },
  },
  {
    files: ['test/**/*.cjs'],
    extends: [js.configs.recommended],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', process: 'readonly' },
    },
    rules: { 'max-len': ['error', LINE_LIMIT] },
  },
);
