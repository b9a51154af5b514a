import assert from 'node:assert/strict';
import { main } from '../../agent/fleet/fleet-cli.js';

/** robot-fleet's options, checked before anything connects: no broker is needed here. */
async function fleet(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const code = await main(
    argv,
    {},
    () => undefined,
    (s: string) => {
      stderr += `${s}\n`;
    },
  );
  return { code, stderr };
}

describe('robot-fleet options', () => {
  it('a mistyped option is a usage error (exit 2) naming the nearest one, not ignored', async () => {
    const typo = await fleet(['list', '--offlin']);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /unknown option --offlin \(did you mean --offline\?\)/);
    const force = await fleet(['update', 'r1', 'ros', 'img:1', '--froce']);
    assert.equal(force.code, 2);
    assert.match(force.stderr, /did you mean --force\?/);
    const far = await fleet(['list', '--colour']);
    assert.equal(far.code, 2);
    assert.match(far.stderr, /unknown option --colour\n/);
  });

  it('takes --name=value as --name value, and refuses a value on a flag', async () => {
    const bad = await fleet(['--timeout=soon', 'list']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--timeout must be a number of seconds/);
    const flagValue = await fleet(['list', '--json=yes']);
    assert.equal(flagValue.code, 2);
    assert.match(flagValue.stderr, /--json takes no value/);
  });
});
