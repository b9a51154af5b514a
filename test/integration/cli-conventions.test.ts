import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { commandsIn } from '../../agent/core/cli-conventions.js';
import { main as fleetMain } from '../../agent/fleet/fleet-cli.js';
import { agentVersion, packageRoot } from '../../agent/core/package-root.js';

/**
 * Issue 18.3: one convention for both CLIs and each of their subcommands (-h/--help exit 0,
 * --version, usage on errors with exit 2, examples in the help). The subcommands are read from
 * each program's own help, so a subcommand added later is held to the same convention.
 */
const programs = {
  'robot-agent': join(packageRoot(), 'build/agent/main.js'),
  'robot-fleet': join(packageRoot(), 'build/agent/fleet/main.js'),
} as const;

function cli(program: keyof typeof programs, args: string[]) {
  const r = spawnSync(process.execPath, [programs[program], ...args], {
    encoding: 'utf8',
    // No ROBOT_* of the test machine's may leak in; nothing here reaches a broker.
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    timeout: 15_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function fleet(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await fleetMain(
    args,
    {},
    (s) => void (stdout += `${s}\n`),
    (s) => void (stderr += `${s}\n`),
  );
  return { code, stdout, stderr };
}

describe('CLI conventions: robot-agent and robot-fleet', function () {
  this.timeout(60_000);

  for (const program of Object.keys(programs) as Array<keyof typeof programs>) {
    it(`${program}: --help, -h and help print the usage with examples on stdout and exit 0`, () => {
      for (const args of [['--help'], ['-h'], ['help']]) {
        const r = cli(program, args);
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^\\s*${program} .*--help`, 'm'));
        assert.match(r.stdout, /^examples:\n {2}\$ /m, `${program} ${args.join(' ')} shows examples`);
        assert.equal(r.stderr, '');
      }
    });

    it(`${program}: --version prints the package version and exits 0`, () => {
      const r = cli(program, ['--version']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), agentVersion());
    });

    it(`${program}: no command or an unknown one prints the problem and the usage on stderr, exit 2`, () => {
      for (const args of [[], ['launch']]) {
        const r = cli(program, args);
        assert.equal(r.code, 2, `${program} ${args.join(' ')}`);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, new RegExp(`^${program}: (no command given|unknown command "?launch"?)\\n\\n`));
        assert.match(r.stderr, /^examples:/m);
      }
    });
  }

  it('robot-agent: every command takes -h and --help (run --help was an unknown argument) and says its own usage', () => {
    const commands = commandsIn(cli('robot-agent', ['--help']).stdout, 'robot-agent');
    assert.deepEqual(commands, ['run', 'check-config']);
    for (const command of commands) {
      for (const flag of ['-h', '--help']) {
        const r = cli('robot-agent', [command, flag]);
        assert.equal(r.code, 0, `${command} ${flag}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^usage: robot-agent ${command} `));
        assert.match(r.stdout, /robot-agent --help/);
      }
    }
    // Help wins even over arguments that would be refused.
    assert.equal(cli('robot-agent', ['run', '--bogus', '--help']).code, 0);
  });

  it('robot-fleet: every command takes -h, --help and help <command>, before any option is checked', async () => {
    const commands = commandsIn((await fleet(['--help'])).stdout, 'robot-fleet');
    for (const expected of ['list', 'status', 'watch', 'send', 'update', 'snapshot'])
      assert.ok(commands.includes(expected), expected);
    for (const command of commands) {
      for (const args of [
        [command, '-h'],
        [command, '--help'],
        ['help', command],
        ['--broker', 'mqtt://127.0.0.1:1', command, '--help'],
      ]) {
        const r = await fleet(args);
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^usage: robot-fleet( \\[options\\])? ${command}( |$)`, 'm'), args.join(' '));
        // The commands of this issue show examples; one added later at least its usage (above).
        if (['list', 'status', 'watch', 'send', 'update', 'snapshot'].includes(command)) {
          assert.match(r.stdout, /^examples:/m, `${command} has an example`);
        }
      }
    }
    // A missing file named by an option would be a usage error; asking for help is not.
    assert.equal((await fleet(['--ca', '/nonexistent/ca.pem', 'list', '-h'])).code, 0);
  });

  it('in a clone: npx and the scripts/ wrappers run both commands (issue 18.1)', () => {
    for (const program of Object.keys(programs)) {
      const wrapper = spawnSync(join(packageRoot(), 'scripts', program), ['--version'], {
        encoding: 'utf8',
        timeout: 15_000,
      });
      assert.equal(wrapper.status, 0, wrapper.stderr);
      assert.equal(wrapper.stdout.trim(), agentVersion());
      const npx = spawnSync('npx', ['--no-install', program, '--version'], {
        cwd: packageRoot(),
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(npx.status, 0, npx.stderr);
      assert.equal(npx.stdout.trim(), agentVersion());
    }
  });

  it("robot-fleet: a command's usage error shows that command's usage, exit 2", async () => {
    const r = await fleet(['send', 'rosmaster-01']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      /^robot-fleet: send needs <robot> <command> \[json\]\n\nusage: robot-fleet \[options\] send /,
    );
  });
});
