import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { MQTT_API_VERSION } from '../../agent/mqtt/api-version.js';
import { packageRoot } from '../../agent/core/package-root.js';
import { fakeSummary } from '../helpers/fleet-robots.js';
import { x3State } from '../helpers/x3-state.js';
import { needRig, rig } from '../setup.js';

/**
 * Issue 18.8 on the broker: a robot one version older (a summary and agent section without
 * apiVersion, as 0.1.0 sends them) beside one speaking a newer API, both retained as robots leave
 * them; robot-fleet lists and shows both, and warns about the newer one only.
 */
describe('robot-fleet across a fleet of mixed agent versions', function () {
  this.timeout(60_000);
  const base = `mixed-${process.pid}`;
  const topics: string[] = [];

  const fleet = (args: string[]) => {
    const options = ['--broker', rig().mqtt.url, '--base', base, '--timeout', '10'];
    const main = join(packageRoot(), 'build/agent/fleet/main.js');
    return spawnSync(process.execPath, [main, ...options, ...args], { encoding: 'utf8', timeout: 30_000 });
  };

  before(async function () {
    needRig(this);
    const client = await mqtt.connectAsync(rig().mqtt.url, { protocolVersion: 4 });
    const put = async (topic: string, payload: string) => {
      topics.push(topic);
      await client.publishAsync(topic, payload, { qos: 1, retain: true });
    };
    const agent = x3State().agent;
    delete agent.apiVersion;
    const older = fakeSummary({
      robot: 'x3-old',
      online: true,
      status: 'ok',
      outdated: false,
      seenAgo: 5,
      diskFree: 10e9,
    });
    assert.equal('apiVersion' in older, false, 'as a 0.1.0 agent sends it');
    await put(`${base}/x3-old/state`, JSON.stringify(older));
    await put(`${base}/x3-old/state/agent`, JSON.stringify(agent));
    await put(`${base}/x3-old/availability`, 'online');
    const newer = fakeSummary({
      robot: 'x3-new',
      online: true,
      status: 'ok',
      outdated: false,
      seenAgo: 5,
      diskFree: 10e9,
    });
    await put(
      `${base}/x3-new/state`,
      JSON.stringify({ ...newer, apiVersion: MQTT_API_VERSION + 1, someFutureField: { a: 1 } }),
    );
    await put(`${base}/x3-new/availability`, 'online');
    await client.endAsync();
  });

  after(async () => {
    if (topics.length === 0) return;
    const client = await mqtt.connectAsync(rig().mqtt.url, { protocolVersion: 4 });
    for (const topic of topics) await client.publishAsync(topic, '', { qos: 1, retain: true });
    await client.endAsync();
  });

  it('lists both, shows the older one as API 1 and warns about the newer one', () => {
    const list = fleet(['list', '--json']);
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual(
      (JSON.parse(list.stdout) as Array<{ robot: string }>).map((r) => r.robot),
      ['x3-new', 'x3-old'],
    );
    const old = fleet(['status', 'x3-old']);
    assert.equal(old.status, 0, old.stderr);
    assert.match(old.stdout, /agent {7}0\.1\.0 \(MQTT API 1\)/);
    assert.doesNotMatch(old.stdout, /WARNING/);
    const newer = fleet(['status', 'x3-new']);
    assert.equal(newer.status, 0, newer.stderr);
    assert.match(newer.stdout, new RegExp(`WARNING +this robot speaks MQTT API ${MQTT_API_VERSION + 1}`));
  });
});
