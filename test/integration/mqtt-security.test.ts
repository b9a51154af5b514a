import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir } from '../helpers/temp.js';
import { sleep, waitUntil } from '../helpers/wait.js';
import { needRig } from '../setup.js';

describe('MQTT TLS and credentials', function () {
  this.timeout(20_000);
  let subject: AgentUnderTest | undefined;

  afterEach(async () => {
    await subject?.stop();
    subject = undefined;
  });

  it('connects with mutual TLS, verifying the broker against the configured CA', async function () {
    const rig = needRig(this);
    const c = rig.mqtt.certs;
    subject = await startAgent({ mqtt: { url: rig.mqtt.tlsUrl, ca: c.ca, cert: c.clientCert, key: c.clientKey } });
    await waitUntil(() => subject!.agent.store.get().agent.mqtt.connected, 5000, 'connected over mTLS');
  });

  it('does not connect to a broker whose certificate its CA did not sign', async function () {
    const rig = needRig(this);
    const c = rig.mqtt.certs;
    // The stranger CA did not sign the broker's certificate: verification must fail.
    subject = await startAgent({
      mqtt: {
        url: rig.mqtt.tlsUrl,
        ca: c.strangerCert.replace('stranger.pem', 'stranger-ca.pem'),
        cert: c.clientCert,
        key: c.clientKey,
      },
    });
    await sleep(1500);
    assert.equal(subject.agent.store.get().agent.mqtt.connected, false);
    assert.ok(
      subject.logs.some((l) => l.msg === 'broker connection error'),
      'the refusal is logged',
    );
  });

  it('is refused without a client certificate, and keeps running', async function () {
    const rig = needRig(this);
    subject = await startAgent({ mqtt: { url: rig.mqtt.tlsUrl, ca: rig.mqtt.certs.ca } });
    await sleep(1500);
    assert.equal(subject.agent.store.get().agent.mqtt.connected, false);
    assert.ok(subject.agent.store.get().host.metrics);
  });

  it('reports an unreadable certificate file as a module failure with its code', async function () {
    const rig = needRig(this);
    subject = await startAgent({ mqtt: { url: rig.mqtt.tlsUrl, ca: '/nonexistent/ca.pem' } });
    const mqttModule = subject.agent.store.get().agent.modules.mqtt;
    assert.equal(mqttModule?.status, 'failed');
    assert.equal(mqttModule?.error?.code, 'mqtt_tls_file');
    assert.match(mqttModule!.error!.message, /mqtt\.ca: cannot read \/nonexistent\/ca\.pem/);
  });

  it('authenticates with the password from its file; a wrong password never shows in logs or state', async function () {
    const rig = needRig(this);
    subject = await startAgent({
      mqtt: { url: rig.mqtt.authUrl, username: rig.mqtt.username, passwordFile: rig.mqtt.passwordFile },
    });
    await waitUntil(() => subject!.agent.store.get().agent.mqtt.connected, 5000, 'connected with password');
    const probe = await MqttProbe.connect(rig.mqtt.authUrl, {
      username: rig.mqtt.username,
      password: rig.mqtt.password,
      protocolVersion: 5,
    });
    await probe.subscribe(`${subject.base}/#`);
    const state = await probe.request(subject.base, 'state', { id: 'pw' });
    await probe.close();
    assert.ok(!JSON.stringify(state).includes(rig.mqtt.password));
    await subject.stop();

    const dir = tempDir();
    const wrong = 'not-the-password-0451';
    writeFileSync(join(dir, 'pw'), wrong);
    subject = await startAgent({
      mqtt: { url: rig.mqtt.authUrl, username: rig.mqtt.username, passwordFile: join(dir, 'pw') },
    });
    await sleep(1500);
    assert.equal(subject.agent.store.get().agent.mqtt.connected, false);
    const logText = JSON.stringify(subject.logs);
    assert.ok(subject.logs.some((l) => l.msg === 'broker connection error'));
    assert.ok(!logText.includes(wrong), 'the password leaked into the logs');
    assert.ok(!JSON.stringify(subject.agent.store.get()).includes(wrong));
  });
});
