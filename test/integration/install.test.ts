import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { agentVersion, packageRoot } from '../../agent/core/package-root.js';
import { loadConfigSchema } from '../../agent/config/load-config.js';
import { tempDir } from '../helpers/temp.js';
import { needRig, rig } from '../setup.js';

/** deploy/install.sh into a temporary root, against the rig's real Docker engine. */
describe('deploy/install.sh into a clean root', function () {
  this.timeout(120_000);
  const script = join(packageRoot(), 'deploy', 'install.sh');
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync('bash', [script, ...args], {
      encoding: 'utf8',
      env: { ...process.env, DOCKER_HOST: `unix://${rig().docker.socketPath}`, ...env },
    });

  /** One release for the run (scripts/release.sh takes a while): what --from installs. */
  let release = '';
  before(function () {
    if (process.env.RIG === '0') return;
    this.timeout(300_000);
    const made = spawnSync('bash', [join(packageRoot(), 'scripts/release.sh'), '--out', tempDir('rfa-dist-')], {
      encoding: 'utf8',
    });
    assert.equal(made.status, 0, made.stderr);
    release = made.stdout.trim().split('\n').pop()!;
  });

  it('scripts/release.sh makes one versioned tarball: the compiled agent, production deps, the serial binding for arm64 and x64', () => {
    if (!release) return;
    assert.match(release, new RegExp(`/robot-agent-${agentVersion().replace(/\./g, '\\.')}\\.tgz$`));
    const listed = spawnSync('tar', ['-tzf', release], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).stdout.split(
      '\n',
    );
    const top = `robot-agent-${agentVersion()}/`;
    assert.ok(
      listed.every((l) => l === '' || l.startsWith(top)),
      'one top directory',
    );
    for (const path of [
      'build/agent/main.js',
      'build/agent/fleet/main.js',
      'config/default.yaml',
      'config/schema.json',
      'deploy/install.sh',
      'systemd/robot-agent.service',
      'node_modules/mqtt/package.json',
    ]) {
      assert.ok(listed.includes(top + path), `${path} in the release`);
    }
    const bindings = listed.filter((l) => l.endsWith('.node'));
    assert.ok(
      bindings.some((l) => l.includes('/prebuilds/linux-arm64/')),
      bindings.join('\n'),
    );
    assert.ok(
      bindings.some((l) => l.includes('/prebuilds/linux-x64/')),
      bindings.join('\n'),
    );
    assert.ok(
      bindings.every((l) => /\/prebuilds\/linux-(arm64|x64)\//.test(l)),
      `only the robots' bindings: ${bindings.join('\n')}`,
    );
    assert.ok(
      !listed.some((l) => l.startsWith(`${top}node_modules/typescript/`) || l.startsWith(`${top}build/test/`)),
      'no dev deps, no tests',
    );
  });

  it('--from the release installs with no compiler and no npm; an upgrade keeps the config and the state', function () {
    needRig(this);
    const root = tempDir('rfa-root-');
    // Anything that compiles or fetches fails loudly: the release must need none of it.
    const stubs = join(tempDir(), 'stubs');
    mkdirSync(stubs);
    for (const tool of ['npm', 'npx', 'tsc', 'cc', 'gcc', 'g++', 'make', 'node-gyp', 'git', 'curl', 'wget']) {
      writeFileSync(join(stubs, tool), `#!/bin/sh\necho "install.sh called ${tool}" >&2\nexit 99\n`);
      chmodSync(join(stubs, tool), 0o755);
    }
    const PATH = `${stubs}:${process.env.PATH}`;
    const first = run(['--root', root, '--from', release, '--no-start'], { PATH });
    assert.equal(first.status, 0, first.stderr + first.stdout);
    assert.match(first.stdout, new RegExp(`installing robot-agent ${agentVersion().replace(/\./g, '\\.')} into`));
    const opt = join(root, 'opt/robot-agent');
    const version = spawnSync(process.execPath, [join(opt, 'build/agent/main.js'), '--version'], {
      encoding: 'utf8',
      cwd: root,
    });
    assert.equal(version.stdout.trim(), agentVersion(), version.stderr);
    // robot-fleet on an operator's laptop is the same tarball unpacked: it runs from there as is.
    const fleet = spawnSync(process.execPath, [join(opt, 'build/agent/fleet/main.js'), 'list', '--help'], {
      encoding: 'utf8',
    });
    assert.equal(fleet.status, 0, fleet.stderr);
    assert.match(fleet.stdout, /^usage: robot-fleet \[options\] list /);
    // The operator's config and the agent's state survive the upgrade; /opt is replaced whole.
    const config = join(root, 'etc/robot-agent/config.yaml');
    writeFileSync(config, 'robot:\n  id: rosmaster-07\n');
    writeFileSync(join(root, 'var/lib/robot-agent/embedded-broker.password'), 'kept\n');
    writeFileSync(join(opt, 'stale-file-of-the-old-version'), '');
    const upgrade = run(['--root', root, '--from', release, '--no-start'], { PATH });
    assert.equal(upgrade.status, 0, upgrade.stderr + upgrade.stdout);
    assert.match(upgrade.stdout, /kept the existing/);
    assert.equal(readFileSync(config, 'utf8'), 'robot:\n  id: rosmaster-07\n');
    assert.equal(readFileSync(join(root, 'var/lib/robot-agent/embedded-broker.password'), 'utf8'), 'kept\n');
    assert.ok(!existsSync(join(opt, 'stale-file-of-the-old-version')), 'the old package is gone');
    assert.deepEqual(readdirSync(join(root, 'opt')), ['robot-agent'], 'no staging left behind');
    const check = spawnSync(process.execPath, [join(opt, 'build/agent/main.js'), 'check-config', '--config', config], {
      encoding: 'utf8',
      cwd: root,
    });
    assert.equal(check.status, 0, check.stderr + check.stdout);
    const bad = run(['--root', root, '--from', join(root, 'nope.tgz')]);
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr, `install.sh: no release tarball at ${join(root, 'nope.tgz')}\n`);
  });

  it('installs the agent, its config, state dir, udev rules and unit; again without touching the config; then uninstalls', function () {
    needRig(this);
    const root = tempDir('rfa-root-');
    // From the clone: a release is made and installed (the second run installs the tarball above).
    const first = run(['--root', root]);
    assert.equal(first.status, 0, first.stderr + first.stdout);
    const opt = join(root, 'opt/robot-agent');
    for (const path of [
      'build/agent/main.js',
      'config/schema.json',
      'docs/schemas/state.json',
      'node_modules/dockerode/package.json',
    ]) {
      assert.ok(existsSync(join(opt, path)), `${path} installed`);
    }
    assert.ok(!existsSync(join(opt, 'node_modules/typescript')), 'development dependencies left out');
    assert.ok(!existsSync(join(opt, 'build/test')), 'tests left out');
    assert.equal(statSync(join(root, 'var/lib/robot-agent')).mode & 0o777, 0o750);
    assert.equal(readlinkSync(join(root, 'usr/local/bin/robot-agent')), '/opt/robot-agent/build/agent/main.js');
    assert.equal(readlinkSync(join(root, 'usr/local/bin/robot-fleet')), '/opt/robot-agent/build/agent/fleet/main.js');
    const unit = readFileSync(join(root, 'etc/systemd/system/robot-agent.service'), 'utf8');
    assert.match(
      unit,
      new RegExp(
        `^ExecStart=${process.execPath.replace(/[.]/g, '\\.')} /opt/robot-agent/build/agent/main.js run --config /etc/robot-agent/config.yaml$`,
        'm',
      ),
    );
    assert.ok(existsSync(join(root, 'etc/udev/rules.d/99-robot-agent.rules')));

    // The installed copy runs on its own, with its own dependencies.
    const config = join(root, 'etc/robot-agent/config.yaml');
    const check = spawnSync(process.execPath, [join(opt, 'build/agent/main.js'), 'check-config', '--config', config], {
      encoding: 'utf8',
      cwd: root,
    });
    assert.equal(check.status, 0, check.stderr + check.stdout);

    // Idempotent, and an operator's config is never overwritten.
    writeFileSync(config, 'robot:\n  id: rosmaster-07\n');
    const again = run(['--root', root, '--from', release]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /kept the existing/);
    assert.equal(readFileSync(config, 'utf8'), 'robot:\n  id: rosmaster-07\n');

    const gone = run(['--root', root, '--uninstall']);
    assert.equal(gone.status, 0, gone.stderr);
    for (const path of [
      'opt/robot-agent',
      'etc/systemd/system/robot-agent.service',
      'etc/udev/rules.d/99-robot-agent.rules',
      'usr/local/bin/robot-agent',
      'usr/local/bin/robot-fleet',
    ]) {
      assert.ok(!existsSync(join(root, path)), `${path} removed`);
    }
    assert.ok(existsSync(config) && existsSync(join(root, 'var/lib/robot-agent')), 'config and state kept');
    assert.equal(run(['--root', root, '--uninstall', '--purge']).status, 0);
    assert.ok(!existsSync(join(root, 'etc/robot-agent')) && !existsSync(join(root, 'var/lib/robot-agent')));
  });

  it('--container installs the agent image with its unit, config, state and rules, and no Node package', function () {
    needRig(this);
    const root = tempDir('rfa-root-');
    const done = run(['--root', root, '--container', 'registry.lab.example/robot-agent:1.2.3']);
    assert.equal(done.status, 0, done.stderr + done.stdout);
    const unit = readFileSync(join(root, 'etc/systemd/system/robot-agent.service'), 'utf8');
    assert.match(unit, /^ {2}registry\.lab\.example\/robot-agent:1\.2\.3$/m);
    assert.match(unit, /--device-cgroup-rule 'c 188:\* rmw'/);
    assert.doesNotMatch(unit, /--privileged/);
    for (const path of ['etc/robot-agent/config.yaml', 'etc/udev/rules.d/99-robot-agent.rules', 'var/lib/robot-agent'])
      assert.ok(existsSync(join(root, path)), path);
    assert.ok(!existsSync(join(root, 'opt/robot-agent')), 'no Node package');
  });

  it('refuses a Docker older than 20.10.21, or none, and writes nothing', function () {
    needRig(this);
    const root = tempDir('rfa-root-');
    const stubs = join(root, 'stubs');
    mkdirSync(stubs);
    // Only the engine's version is faked: what the robot's docker CLI would print.
    writeFileSync(join(stubs, 'docker'), '#!/bin/sh\necho 20.10.7\n');
    chmodSync(join(stubs, 'docker'), 0o755);
    const old = run(['--root', root], { PATH: `${stubs}:${process.env.PATH}` });
    assert.equal(old.status, 3);
    assert.match(old.stderr, /Docker 20\.10\.7 is too old: 20\.10\.21 or newer/);
    const none = run(['--root', root], { DOCKER_HOST: `unix://${join(root, 'no.sock')}` });
    assert.equal(none.status, 3);
    // The sentence ends with its question: the exit code is not printed into it.
    assert.match(none.stderr, /cannot reach the Docker engine \(is docker\.service running, and are you root\?\)\n$/);
    assert.ok(!existsSync(join(root, 'opt')) && !existsSync(join(root, 'etc')), 'nothing written');
    assert.equal(run(['--bogus']).status, 2);
  });

  it('--help prints the comment block and nothing of the code', () => {
    const help = spawnSync('bash', [script, '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^Installs robot-fleet-agent/);
    assert.match(help.stdout, /--from robot-agent-X\.Y\.Z\.tgz/);
    assert.doesNotMatch(help.stdout, /set -euo|^#|\broot=""/m);
  });

  it('the Node version is said once: package.json engines, which install.sh reads and the README repeats', () => {
    const engines = (
      JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { engines: { node: string } }
    ).engines.node;
    const min = /^>=\s*([\d.]+)$/.exec(engines)![1]!;
    assert.ok(
      readFileSync(join(packageRoot(), 'README.md'), 'utf8').includes(`Node.js ${min}`),
      `README says Node.js ${min}`,
    );
    assert.ok(
      !/version_ge "\$\{node_version#v\}" 20\.0\.0/.test(readFileSync(script, 'utf8')),
      'no hard-coded 20.0.0 in install.sh',
    );
  });

  it('refuses glibc 2.27 (Ubuntu 18.04, Jetson Nano) with glibc_too_old and the --container way, writing nothing; --container installs there', function () {
    needRig(this);
    const root = tempDir('rfa-root-');
    const stubs = join(root, 'stubs');
    mkdirSync(stubs);
    // Only the C library's version is faked: what getconf prints on Ubuntu 18.04.
    writeFileSync(join(stubs, 'getconf'), '#!/bin/sh\n[ "$1" = GNU_LIBC_VERSION ] && echo glibc 2.27\n');
    chmodSync(join(stubs, 'getconf'), 0o755);
    const env = { PATH: `${stubs}:${process.env.PATH}` };
    const refused = run(['--root', root], env);
    assert.equal(refused.status, 3, refused.stderr + refused.stdout);
    assert.match(
      refused.stderr,
      /^install\.sh: glibc_too_old: .*glibc 2\.27, and Node 20 needs glibc 2\.28 or newer .*--container IMAGE/,
    );
    assert.ok(!existsSync(join(root, 'opt')) && !existsSync(join(root, 'etc')), 'nothing written');
    const contained = run(['--root', root, '--container', 'robot-agent:0.1.0-arm64'], env);
    assert.equal(contained.status, 0, contained.stderr + contained.stdout);
    assert.match(
      readFileSync(join(root, 'etc/systemd/system/robot-agent.service'), 'utf8'),
      /^ {2}robot-agent:0\.1\.0-arm64$/m,
    );
    // glibc 2.28 (Debian 10) and newer pass the check, on to the next one (a Docker faked too old).
    writeFileSync(join(stubs, 'getconf'), '#!/bin/sh\necho glibc 2.28\n');
    writeFileSync(join(stubs, 'docker'), '#!/bin/sh\necho 20.10.7\n');
    chmodSync(join(stubs, 'docker'), 0o755);
    const next = run(['--root', root], env);
    assert.equal(next.status, 3);
    assert.match(next.stderr, /^install\.sh: Docker 20\.10\.7 is too old/);
  });

  it('the udev rules name the devices as the config catalog does', () => {
    const rules = readFileSync(join(packageRoot(), 'deploy/udev/99-robot-agent.rules'), 'utf8');
    const devices = (
      loadConfigSchema() as {
        properties: { devices: { properties: Record<string, { properties: Record<string, { default?: string }> }> } };
      }
    ).properties.devices.properties;
    const d = (device: string, key: string) => devices[device]!.properties[key]!.default!;
    const rule = (vid: string, pid: string, alias: string) => new RegExp(`"${vid}".*"${pid}".*SYMLINK\\+="${alias}"`);
    assert.match(rules, rule(d('lidar', 'vid'), d('lidar', 'pid'), d('lidar', 'alias')));
    assert.match(rules, rule(d('board', 'vid'), d('board', 'pid'), d('board', 'alias')));
    assert.match(rules, rule(d('camera', 'vid'), d('camera', 'depthPid'), d('camera', 'depthAlias')));
    assert.match(rules, rule(d('camera', 'vid'), d('camera', 'rgbPid'), d('camera', 'rgbAlias')));
  });
});
