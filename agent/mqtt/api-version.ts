/**
 * The version of the MQTT API (topics, payloads, commands: docs/mqtt-api.md#versions), carried in
 * every state summary and in the agent section of the state. Robots of one fleet run different
 * agent versions for months; a dashboard or robot-fleet reads this to know what a robot speaks.
 *
 * It goes up only for an incompatible change (a field, topic, command or event removed, renamed,
 * or given another meaning or type). A compatible change (something added, optional to read)
 * leaves it as it is. Agents before 0.2.0 did not send it: absent means 1.
 */
export const MQTT_API_VERSION = 1;

/** What a summary or agent section says, or 1 for a robot from before the field existed. */
export function apiVersionOf(payload: { apiVersion?: unknown } | null | undefined): number {
  const v = payload?.apiVersion;
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : 1;
}
