import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join, relative } from 'node:path';
import { packageRoot } from '../../agent/core/package-root.js';

/**
 * Issue 13: the linter and the formatter in CI. Each runs through scripts/lint.sh (what `npm run lint`
 * runs), so CI and an engineer's terminal agree, and a test fails listing every finding. In the main
 * suite, not in test:unit: the type-aware lint builds the whole program (25 s to 2 min on two busy cores).
 * It needs no rig.
 */
const root = packageRoot();

function lint(tool: 'eslint' | 'prettier', args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      [join(root, 'scripts/lint.sh'), tool, ...args],
      { cwd: root, maxBuffer: 256 * 1024 * 1024, timeout: 280_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

interface LintResult {
  filePath: string;
  messages: Array<{ ruleId: string | null; line: number; column: number; message: string }>;
}

describe('code style: the linter and the formatter (issue 13)', function () {
  this.timeout(300_000);

  it('eslint finds nothing in agent/, test/ and bench/ (the dashboard page included)', async () => {
    const r = await lint('eslint', ['--format', 'json']);
    let results: LintResult[];
    try {
      results = JSON.parse(r.stdout) as LintResult[];
    } catch {
      assert.fail(`eslint did not run (exit ${r.code}):\n${r.stderr}${r.stdout.slice(0, 2000)}`);
    }
    const files = results.map((f) => relative(root, f.filePath));
    // A config that matched nothing would pass too: the files it must have read are named.
    assert.ok(files.filter((f) => f.endsWith('.ts')).length > 200, `only ${files.length} files linted`);
    for (const f of ['agent/app.ts', 'test/setup.ts', 'agent/fleet/dashboard/page/app.js', 'test/reporter.cjs']) {
      assert.ok(files.includes(f), `${f} is linted`);
    }
    const findings = results.flatMap((f) =>
      f.messages.map((m) => `${relative(root, f.filePath)}:${m.line}:${m.column} ${m.ruleId ?? ''} ${m.message}`),
    );
    assert.deepEqual(findings, [], `eslint found ${findings.length} problems (npm run lint):\n${findings.join('\n')}`);
    assert.equal(r.code, 0, r.stderr);
  });

  it('prettier --check finds every file formatted', async () => {
    const r = await lint('prettier', []);
    const unformatted = `${r.stdout}\n${r.stderr}`
      .split('\n')
      .filter((l) => l.startsWith('[warn] ') && !l.includes('Code style issues'))
      .map((l) => l.slice('[warn] '.length));
    assert.deepEqual(
      unformatted,
      [],
      `not formatted (npx --no-install prettier --write <file>):\n${unformatted.join('\n')}`,
    );
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  });
});
