import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';

describe('embedded broker beyond loopback', function () {
  let subject: AgentUnderTest | undefined;
  afterEach(async () => {
    await subject?.stop();
    subject = undefined;
  });

  it('requires the configured credentials from every client, and the agent itself uses them', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'pw'), 'embedded-secret\n');
    subject = await startAgent({
      mqtt: { embedded: { host: '0.0.0.0', username: 'local', passwordFile: join(dir, 'pw') } },
    });
    await waitUntil(() => subject!.agent.store.get().agent.mqtt.connected, 5000, 'agent connected to its own broker');
    const url = `mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`;
    await assert.rejects(
      mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0 }),
      /Bad username or password|Not authorized/i,
    );
    await assert.rejects(
      mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, username: 'local', password: 'guess' }),
      /Bad username or password|Not authorized/i,
    );
    const probe = await MqttProbe.connect(url, { protocolVersion: 4, username: 'local', password: 'embedded-secret' });
    await probe.subscribe(`${subject.base}/#`);
    assert.equal((await probe.request(subject.base, 'ping', { id: 'auth' })).ok, true);
    await probe.close();
    assert.ok(!JSON.stringify(subject.logs).includes('embedded-secret'));
  });
});
