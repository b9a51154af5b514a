import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../agent/config/load-config.js';
import { nearest } from '../../agent/config/key-suggestions.js';
import { tempDir, writeYaml } from '../helpers/temp.js';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected the config to be refused');
}

/** Issue 18.4: a typo passed silently, and the default it meant to replace ran the robot. */
describe('config typos: errors with the nearest key', () => {
  const file = () => writeYaml(tempDir(), 'c.yaml', '');

  it('an unknown ROBOT_AGENT_* variable is an error naming the nearest variable and its key', () => {
    const problems = problemsOf(() => loadConfig({ file: file(), env: { ROBOT_AGENT_MQTT_BASETOPIC: 'lab' } }));
    assert.deepEqual(problems, [
      'ROBOT_AGENT_MQTT_BASETOPIC: is not a setting of the agent (the environment variable would be ignored); ' +
        'did you mean ROBOT_AGENT_MQTT_BASE_TOPIC (mqtt.baseTopic)?',
    ]);
  });

  it('a slip of a letter or two is still found; a name far from any gets the docs instead', () => {
    const env = {
      ROBOT_AGENT_STATE_DRI: '/x',
      ROBOT_AGENT_MQTT_HEARTBEET: '10',
      ROBOT_AGENT_WHATEVER_ELSE_ENTIRELY: '1',
    };
    const problems = problemsOf(() => loadConfig({ file: file(), env }));
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.match(
      problems.find((p) => p.startsWith('ROBOT_AGENT_STATE_DRI:'))!,
      /did you mean ROBOT_AGENT_STATE_DIR \(state\.dir\)\?$/,
    );
    assert.match(
      problems.find((p) => p.startsWith('ROBOT_AGENT_MQTT_HEARTBEET:'))!,
      /did you mean ROBOT_AGENT_MQTT_HEARTBEAT/,
    );
    assert.match(
      problems.find((p) => p.startsWith('ROBOT_AGENT_WHATEVER_ELSE_ENTIRELY:'))!,
      /see docs\/configuration\.md/,
    );
  });

  it('the password variables and ROBOT_AGENT_REGISTRY_PASSWORD_<HOST> are not typos; other prefixes are untouched', () => {
    const env = {
      ROBOT_AGENT_MQTT_PASSWORD: 'pw',
      ROBOT_AGENT_MQTT_EMBEDDED_PASSWORD: 'pw',
      ROBOT_AGENT_REGISTRY_PASSWORD_REGISTRY_LOCAL: 'pw',
      ROBOT_FLEET_BROKER: 'mqtt://x',
      ROBOT_AGENT_MQTT_BASE_TOPIC: 'lab',
    };
    assert.equal(loadConfig({ file: file(), env }).config.mqtt.baseTopic, 'lab');
  });

  it('an unknown key in the file suggests its nearest sibling', () => {
    const yaml = writeYaml(tempDir(), 'c.yaml', {
      mqtt: { basetopic: 'lab', embedded: { prot: 1884 } },
      snapshot: { keep: 2 },
    });
    const problems = problemsOf(() => loadConfig({ file: yaml, env: {} }));
    assert.ok(problems.includes('mqtt.basetopic: unknown key (did you mean mqtt.baseTopic?)'), problems.join('\n'));
    assert.ok(
      problems.includes('mqtt.embedded.prot: unknown key (did you mean mqtt.embedded.port?)'),
      problems.join('\n'),
    );
    assert.ok(problems.includes('snapshot: unknown key (did you mean snapshots?)'), problems.join('\n'));
  });

  it('a password key points to the passwordFile beside it', () => {
    const yaml = writeYaml(tempDir(), 'c.yaml', {
      mqtt: { url: 'mqtts://b:8883', username: 'r', password: 'hunter2' },
      registries: { 'registry.local': { username: 'u', password: 'x' } },
    });
    const problems = problemsOf(() => loadConfig({ file: yaml, env: {} }));
    const mqtt = problems.find((p) => p.startsWith('mqtt.password:'));
    assert.match(
      mqtt ?? '',
      /^mqtt\.password: unknown key: passwords never live in the YAML; .* in mqtt\.passwordFile$/,
    );
    const registry = problems.find((p) => p.startsWith('registries.registry.local.password:'));
    assert.match(registry ?? '', /registries\.registry\.local\.passwordFile$/, problems.join('\n'));
    assert.ok(!problems.join('\n').includes('hunter2'), 'the password itself is never echoed');
  });

  it('nearest ignores case and separators and refuses a far guess', () => {
    assert.equal(nearest('base_topic', ['baseTopic', 'heartbeat']), 'baseTopic');
    assert.equal(nearest('HEARTBEAT', ['baseTopic', 'heartbeat']), 'heartbeat');
    assert.equal(nearest('colour', ['baseTopic', 'heartbeat']), undefined);
  });
});
