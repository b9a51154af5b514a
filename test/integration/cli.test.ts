import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../agent/core/package-root.js';
import { spawnAgent } from '../helpers/agent-process.js';
import { tempDir, writeYaml } from '../helpers/temp.js';

describe('robot-agent CLI', () => {
  it('--version prints the package version', async () => {
    const p = spawnAgent(['--version']);
    assert.equal(await p.exited(), 0);
    const version = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string })
      .version;
    assert.deepEqual(p.stdout.filter(Boolean), [version]);
  });

  it('check-config accepts the embedded defaults', async () => {
    const p = spawnAgent(['check-config'], { ROBOT_AGENT_ROBOT_ID: 'cli-robot' });
    assert.equal(await p.exited(), 0);
    assert.match(p.stdout.join('\n'), /^config OK: .*default\.yaml \(robot cli-robot, broker embedded\)/);
  });

  it('check-config prints one line per problem with its path, and exits 2', async () => {
    const dir = tempDir();
    const file = writeYaml(dir, 'bad.yaml', {
      mqtt: { heartbeat: 0, url: 'ftp://x', extra: 1 },
      metrics: { interval: 'x' },
    });
    const p = spawnAgent(['check-config', '--config', file], { ROBOT_AGENT_MQTT_KEEPALIVE: 'never' });
    assert.equal(await p.exited(), 2);
    const lines = p.stderr.filter((l) => l.startsWith('config error: '));
    const paths = lines.map((l) => l.slice('config error: '.length).split(':')[0]).sort();
    assert.deepEqual(paths, ['metrics.interval', 'mqtt.extra', 'mqtt.heartbeat', 'mqtt.keepalive', 'mqtt.url']);
  });

  it('check-config refuses a mistyped ROBOT_AGENT_* variable with the nearest name (issue 18.4)', async () => {
    const p = spawnAgent(['check-config'], { ROBOT_AGENT_ROBOT_ID: 'cli-robot', ROBOT_AGENT_MQTT_BASETOPIC: 'lab' });
    assert.equal(await p.exited(), 2);
    assert.ok(
      p.stderr.includes(
        'config error: ROBOT_AGENT_MQTT_BASETOPIC: is not a setting of the agent (the environment variable would be ' +
          'ignored); did you mean ROBOT_AGENT_MQTT_BASE_TOPIC (mqtt.baseTopic)?',
      ),
      p.stderr.join('\n'),
    );
  });

  it('run refuses a bad config before starting anything, with exit code 2', async () => {
    const dir = tempDir();
    const p = spawnAgent(['run', '--config', writeYaml(dir, 'bad.yaml', { robot: { id: 'a/b' } })]);
    assert.equal(await p.exited(), 2);
    assert.ok(
      p.stderr.some((l) => l.startsWith('config error: robot.id:')),
      p.stderr.join('\n'),
    );
    assert.equal(p.stdout.filter(Boolean).length, 0, 'nothing may have started');
  });

  it('unknown commands and flags are usage errors (exit 2)', async () => {
    assert.equal(await spawnAgent(['launch']).exited(), 2);
    assert.equal(await spawnAgent(['run', '--verbose']).exited(), 2);
    assert.equal(await spawnAgent(['run', '--config']).exited(), 2);
  });
});
