import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { generateKeyPairSync } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { RequestSender } from '../../agent/fleet/dashboard/send-request.js';
import { messageHash, SIGNATURE_FIELD } from '../../agent/security/canonical-json.js';
import { CommandVerifier } from '../../agent/security/command-verifier.js';

/** A client that records what is published and answers nothing: enough to read the request as sent. */
function recordingClient(): { client: MqttClient; published: Array<{ topic: string; payload: string }> } {
  const published: Array<{ topic: string; payload: string }> = [];
  const client = Object.assign(new EventEmitter(), {
    subscribeAsync: async () => [],
    publishAsync: async (topic: string, payload: string) => {
      published.push({ topic, payload });
    },
  });
  return { client: client as unknown as MqttClient, published };
}

describe('dashboard requests with --sign-key', () => {
  it('signs every action so that a robot with security.commands keys verifies it', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const { client, published } = recordingClient();
    const sender = new RequestSender(client, { base: 'fleet', signingKey: { key: privateKey, kid: 'ops' } });
    await sender.start();
    const answer = sender.send('r1', 'restart', { name: 'ros' }, 50);
    assert.equal((await answer).error?.code, 'no_answer');
    assert.equal(published.length, 1);
    assert.equal(published[0]!.topic, 'fleet/r1/request/restart');
    const message = JSON.parse(published[0]!.payload) as Record<string, unknown>;
    assert.equal(typeof message[SIGNATURE_FIELD], 'string');
    const verifier = new CommandVerifier({
      robotId: 'r1',
      keys: new Map([['ops', publicKey]]),
      clockSkewSeconds: 30,
      now: () => Date.now(),
    });
    const claims = await verifier.verify(message[SIGNATURE_FIELD], {
      command: 'restart',
      hash: messageHash(message),
      maxLifetimeSeconds: 120,
    });
    verifier.checkTime(claims);
    assert.equal(claims.aud, 'r1');
    sender.stop();
  });

  it('sends unsigned requests when no key is given (robots without keys accept them)', async () => {
    const { client, published } = recordingClient();
    const sender = new RequestSender(client, { base: 'fleet' });
    await sender.start();
    await sender.send('r1', 'restart', { name: 'ros' }, 20);
    assert.equal((JSON.parse(published[0]!.payload) as Record<string, unknown>)[SIGNATURE_FIELD], undefined);
    sender.stop();
  });
});
