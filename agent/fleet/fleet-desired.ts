import type { MqttClient } from 'mqtt';
import { signMessage, type SigningKey } from './request-signer.js';

/**
 * `robot-fleet desired <robot> <json>`: the fleet's desired state for one robot, published
 * retained (docs/mqtt-api.md#desired-state), signed when a key is given: a robot with
 * security.commands.keys takes no other. The robot's answer is its state.desired, not a response.
 */
export async function publishDesired(
  client: MqttClient,
  o: { base: string; robot: string; desired: Record<string, unknown>; key?: SigningKey },
): Promise<string> {
  const message = o.key
    ? await signMessage({ key: o.key, robot: o.robot, command: 'desired', message: o.desired })
    : o.desired;
  const topic = `${o.base}/${o.robot}/desired`;
  await client.publishAsync(topic, JSON.stringify(message), { qos: 1, retain: true });
  const how = o.key ? 'published signed' : 'published';
  return `${how} on ${topic} (retained); robot-fleet status ${o.robot} shows whether it was taken`;
}
