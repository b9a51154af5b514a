import assert from 'node:assert/strict';
import { cliAction, commandHelp, commandsIn } from '../../agent/core/cli-conventions.js';
import { configFileToUse } from '../../agent/config/config-file.js';

const USAGE = `tool: does things.

  tool [options] alpha <x>        first
        more about alpha
  tool [options] beta             second
  tool --version

examples:
  $ tool alpha 1
  $ tool --broker b beta`;

describe('cli conventions', () => {
  it('finds the subcommands in the usage, and help or version before anything else', () => {
    assert.deepEqual(commandsIn(USAGE, 'tool'), ['alpha', 'beta']);
    assert.deepEqual(cliAction(['alpha', '--bad', '-h'], ['alpha', 'beta']), { kind: 'help', command: 'alpha' });
    assert.deepEqual(cliAction(['help', 'beta'], ['alpha', 'beta']), { kind: 'help', command: 'beta' });
    assert.deepEqual(cliAction(['help'], ['alpha', 'beta']), { kind: 'help' });
    assert.deepEqual(cliAction(['--version'], ['alpha']), { kind: 'version' });
    assert.deepEqual(cliAction(['alpha', 'x'], ['alpha']), { kind: 'run' });
  });

  it("a command's help is its usage lines and its examples", () => {
    assert.equal(
      commandHelp(USAGE, 'tool', 'alpha'),
      'usage: tool [options] alpha <x>        first\n  more about alpha\n\nexamples:\n  $ tool alpha 1\n\n' +
        'every option, the exit codes and the other commands: tool --help',
    );
    assert.match(
      commandHelp(USAGE, 'tool', 'beta'),
      /^usage: tool \[options\] beta {13}second\n\nexamples:\n {2}\$ tool --broker b beta\n/,
    );
    assert.equal(commandHelp(USAGE, 'tool', undefined), USAGE);
  });

  it("without --config: the robot's /etc file when it exists, else the embedded defaults (issue 18.7)", () => {
    assert.equal(
      configFileToUse(() => true, '/etc/robot-agent/config.yaml'),
      '/etc/robot-agent/config.yaml',
    );
    assert.match(
      configFileToUse(() => false, '/etc/robot-agent/config.yaml'),
      /config\/default\.yaml$/,
    );
  });
});
