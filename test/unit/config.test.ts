import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, defaultConfigFile, loadConfig, loadConfigSchema } from '../../agent/config/load-config.js';
import { envLeaves } from '../../agent/config/env-overrides.js';
import { tempDir, writeYaml } from '../helpers/temp.js';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'config_invalid');
    return err.problems;
  }
  assert.fail('expected the config to be refused');
}

describe('config', () => {
  it('the embedded defaults load with every documented default filled in', () => {
    const { config, secrets } = loadConfig({ file: defaultConfigFile(), env: {}, hostname: 'rosmaster-07' });
    assert.equal(config.robot.id, 'rosmaster-07');
    assert.equal(config.mqtt.url, undefined);
    assert.equal(config.mqtt.baseTopic, 'fleet');
    assert.equal(config.mqtt.heartbeat, 60);
    assert.equal(config.mqtt.protocolVersion, 5);
    assert.deepEqual(config.mqtt.reconnect, { initial: 1, max: 60 });
    assert.deepEqual(config.mqtt.embedded, { host: '127.0.0.1', port: 1883 });
    assert.equal(config.docker.socketPath, '/var/run/docker.sock');
    assert.deepEqual(config.devices, {
      sysfsRoot: '/sys',
      devRoot: '/dev',
      pollInterval: 5000,
      watch: true,
      lidar: { vid: '10c4', pid: 'ea60', alias: 'rplidar', baudRate: 115200, checkInterval: 300, timeout: 2000 },
      camera: { vid: '2bc5', depthPid: '060f', rgbPid: '050f', depthAlias: 'astradepth', rgbAlias: 'astrauvc' },
      board: { vid: '1a86', pid: '7523', alias: 'myserial' },
    });
    assert.equal(config.metrics.interval, 30);
    assert.deepEqual(secrets, {});
  });

  it('an empty file is the defaults; a host name unfit for topics is cleaned', () => {
    const dir = tempDir();
    const { config } = loadConfig({ file: writeYaml(dir, 'c.yaml', ''), env: {}, hostname: 'robot #1/lab' });
    assert.equal(config.robot.id, 'robot--1-lab');
    assert.equal(config.state.dir, '/var/lib/robot-agent');
  });

  it('ROBOT_AGENT_<PATH> overrides any key, converted to the schema type', () => {
    const dir = tempDir();
    const file = writeYaml(dir, 'c.yaml', { robot: { id: 'from-file' }, mqtt: { heartbeat: 30 } });
    const { config } = loadConfig({
      file,
      env: {
        ROBOT_AGENT_ROBOT_ID: 'from-env',
        ROBOT_AGENT_MQTT_URL: 'mqtt://broker.local:1883',
        ROBOT_AGENT_MQTT_BASE_TOPIC: 'lab/fleet',
        ROBOT_AGENT_MQTT_HEARTBEAT: '15',
        ROBOT_AGENT_MQTT_PROTOCOL_VERSION: '4',
        ROBOT_AGENT_MQTT_RECONNECT_MAX: '2.5',
        ROBOT_AGENT_DEVICES_SYSFS_ROOT: '/tmp/sys',
      },
    });
    assert.equal(config.robot.id, 'from-env');
    assert.equal(config.mqtt.url, 'mqtt://broker.local:1883');
    assert.equal(config.mqtt.baseTopic, 'lab/fleet');
    assert.equal(config.mqtt.heartbeat, 15);
    assert.equal(config.mqtt.protocolVersion, 4);
    assert.equal(config.mqtt.reconnect.max, 2.5);
    assert.equal(config.devices.sysfsRoot, '/tmp/sys');
  });

  it('an empty environment value removes the key so its default applies', () => {
    const dir = tempDir();
    const file = writeYaml(dir, 'c.yaml', { mqtt: { url: 'mqtt://x:1', heartbeat: 30 } });
    const { config } = loadConfig({ file, env: { ROBOT_AGENT_MQTT_URL: '', ROBOT_AGENT_MQTT_HEARTBEAT: '' } });
    assert.equal(config.mqtt.url, undefined);
    assert.equal(config.mqtt.heartbeat, 60);
  });

  it('every leaf of the schema has an environment name, including the ones the issue names', () => {
    const names = envLeaves(loadConfigSchema() as never).map((l) => l.envName);
    for (const required of [
      'ROBOT_AGENT_MQTT_URL',
      'ROBOT_AGENT_ROBOT_ID',
      'ROBOT_AGENT_MQTT_PASSWORD_FILE',
      'ROBOT_AGENT_DOCKER_SOCKET_PATH',
      'ROBOT_AGENT_STATE_DIR',
      'ROBOT_AGENT_METRICS_INTERVAL',
    ]) {
      assert.ok(names.includes(required), `${required} missing from ${names.join(', ')}`);
    }
    assert.equal(new Set(names).size, names.length, 'two keys map to one variable');
  });

  it('reports every problem at once, each with its path', () => {
    const dir = tempDir();
    const file = writeYaml(dir, 'c.yaml', {
      robot: { id: 'bad id/with+wildcards' },
      mqtt: { heartbeat: 'often', url: 'http://nope', protocolVersion: 3, colour: 'blue' },
      metrics: { interval: 1 },
      typo: true,
    });
    const problems = problemsOf(() => loadConfig({ file, env: { ROBOT_AGENT_MQTT_KEEPALIVE: 'soon' } }));
    const expectPath = (path: string) =>
      assert.ok(
        problems.some((p) => p.startsWith(path + ':')),
        `no problem for ${path} in:\n${problems.join('\n')}`,
      );
    for (const path of [
      'robot.id',
      'mqtt.heartbeat',
      'mqtt.url',
      'mqtt.protocolVersion',
      'mqtt.colour',
      'metrics.interval',
      'typo',
      'mqtt.keepalive',
    ])
      expectPath(path);
    for (const p of problems) assert.ok(!p.includes('\n'), `problem spans lines: ${p}`);
  });

  it('unparseable YAML and a missing file are config errors, not crashes', () => {
    const dir = tempDir();
    assert.match(
      problemsOf(() => loadConfig({ file: writeYaml(dir, 'c.yaml', 'mqtt: [unclosed'), env: {} }))[0]!,
      /^\(yaml\) line \d+/,
    );
    assert.match(problemsOf(() => loadConfig({ file: join(dir, 'absent.yaml'), env: {} }))[0]!, /cannot read/);
    assert.match(
      problemsOf(() => loadConfig({ file: writeYaml(dir, 'l.yaml', '- a\n- b\n'), env: {} }))[0]!,
      /must be a mapping/,
    );
  });

  it('reads the broker password from its file, or from the environment first, and never keeps it in the config', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'pw'), 's3cret-from-file\n');
    const file = writeYaml(dir, 'c.yaml', {
      mqtt: { url: 'mqtt://b:1', username: 'robot', passwordFile: join(dir, 'pw') },
    });
    const fromFile = loadConfig({ file, env: {} });
    assert.equal(fromFile.secrets.mqttPassword, 's3cret-from-file');
    assert.ok(!JSON.stringify(fromFile.config).includes('s3cret'));
    assert.equal(loadConfig({ file, env: { ROBOT_AGENT_MQTT_PASSWORD: 'env-pw' } }).secrets.mqttPassword, 'env-pw');
  });

  it('refuses a password in the YAML itself and an unreadable password file', () => {
    const dir = tempDir();
    const inline = problemsOf(() =>
      loadConfig({ file: writeYaml(dir, 'a.yaml', { mqtt: { password: 'plain' } }), env: {} }),
    );
    assert.equal(inline.length, 1);
    assert.match(inline[0]!, /^mqtt\.password: unknown key: passwords never live in the YAML; .* mqtt\.passwordFile$/);
    const missing = problemsOf(() =>
      loadConfig({
        file: writeYaml(dir, 'b.yaml', { mqtt: { url: 'mqtt://b:1', username: 'u', passwordFile: join(dir, 'nope') } }),
        env: {},
      }),
    );
    assert.match(missing[0]!, /^mqtt\.passwordFile: cannot read .*ENOENT/);
  });

  it('refuses an embedded broker beyond loopback without credentials', () => {
    const dir = tempDir();
    const problems = problemsOf(() =>
      loadConfig({ file: writeYaml(dir, 'c.yaml', { mqtt: { embedded: { host: '0.0.0.0' } } }), env: {} }),
    );
    assert.match(problems[0]!, /^mqtt\.embedded\.host: .*requires mqtt\.embedded\.username/);
    writeFileSync(join(dir, 'pw'), 'pw');
    const ok = loadConfig({
      file: writeYaml(dir, 'd.yaml', {
        mqtt: { embedded: { host: '0.0.0.0', username: 'u', passwordFile: join(dir, 'pw') } },
      }),
      env: {},
    });
    assert.equal(ok.secrets.embeddedPassword, 'pw');
  });

  it('refuses half a client certificate', () => {
    const dir = tempDir();
    const problems = problemsOf(() =>
      loadConfig({ file: writeYaml(dir, 'c.yaml', { mqtt: { url: 'mqtts://b:8883', cert: '/x.pem' } }), env: {} }),
    );
    assert.match(problems[0]!, /^mqtt\.key: /);
  });

  it('containers: fills each spec with its defaults, refuses an image outside images.allow, a required device not listed, and keys the fleet may not set', () => {
    const dir = tempDir();
    const ok = loadConfig({
      file: writeYaml(dir, 'ok.yaml', {
        containers: { ros: { image: 'yahboomtechnology/ros-foxy:3.3.9', devices: ['lidar', '/dev/input'] } },
      }),
      env: {},
    });
    const ros = ok.config.containers.ros!;
    assert.deepEqual(
      [ros.enabled, ros.replug, ros.network, ros.restart, ros.privileged, ros.deviceMajors],
      [true, 'live', 'host', 'unless-stopped', false, [188, 189, 81]],
    );
    const problems = problemsOf(() =>
      loadConfig({
        file: writeYaml(dir, 'bad.yaml', {
          containers: {
            a: { image: 'evil/miner:1' },
            b: { image: 'yahboomtechnology/ros-foxy:3.3.9', devices: ['board'], required: ['lidar'] },
            c: {
              image: 'yahboomtechnology/ros-foxy:3.3.9',
              devices: ['/etc/shadow', '/dev/../etc/shadow'],
              mounts: ['relative:/x'],
            },
            'bad name!': { image: 'yahboomtechnology/ros-foxy:3.3.9' },
          },
        }),
        env: {},
      }),
    );
    const expectPath = (path: string) =>
      assert.ok(
        problems.some((p) => p.startsWith(path + ':')),
        `no problem for ${path} in:\n${problems.join('\n')}`,
      );
    expectPath('containers.c.devices.0');
    expectPath('containers.c.devices.1');
    expectPath('containers.c.mounts.0');
    expectPath('containers.bad name!');
    // Schema problems come first; fix them and the cross-field ones show.
    const cross = problemsOf(() =>
      loadConfig({
        file: writeYaml(dir, 'cross.yaml', {
          containers: {
            a: { image: 'evil/miner:1' },
            b: { image: 'yahboomtechnology/ros-foxy:3.3.9', devices: ['board'], required: ['lidar'] },
          },
        }),
        env: {},
      }),
    );
    assert.ok(
      cross.some((p) => p.startsWith('containers.a.image: ') && p.includes('not allowed')),
      cross.join('\n'),
    );
    assert.ok(
      cross.some((p) => p.startsWith('containers.b.required: ')),
      cross.join('\n'),
    );
  });
});
