import type { DesiredMessage } from '../containers/desired-state.js';
import type { AgentEvent } from '../state/event-bus.js';
import type { AgentState } from '../state/types.js';

/**
 * Every topic the agent uses and the payload that travels on it: the MQTT contract in one
 * place (documented in docs/mqtt-api.md, schemas in docs/schemas/).
 */
export interface Topics {
  /** Retained, QoS 1: "online" | "offline" (also the last will). */
  availability: string;
  /** Retained JSON AgentState. */
  state: string;
  /** Not retained JSON AgentEvent. */
  events: string;
  /** Retained, fleet -> robot: what it should run (docs/schemas/desired.json). */
  desired: string;
  /** Subscription for every command: <b>/request/+. */
  requests: string;
  request(command: string): string;
  response(command: string): string;
  /** The command name from a request topic, or undefined when the topic is not one. */
  commandOf(topic: string): string | undefined;
}

export function buildTopics(baseTopic: string, robotId: string): Topics {
  const b = `${baseTopic}/${robotId}`;
  const requestPrefix = `${b}/request/`;
  return {
    availability: `${b}/availability`,
    state: `${b}/state`,
    events: `${b}/events`,
    desired: `${b}/desired`,
    requests: `${requestPrefix}+`,
    request: (command) => requestPrefix + command,
    response: (command) => `${b}/response/${command}`,
    commandOf: (topic) => (topic.startsWith(requestPrefix) ? topic.slice(requestPrefix.length) : undefined),
  };
}

export type Availability = 'online' | 'offline';

/** A command request: an object with a string id and the command's own arguments. */
export interface CommandRequest {
  id: string;
  [arg: string]: unknown;
}

export type CommandResponse =
  | { id: string | null; ok: true; result: unknown }
  | { id: string | null; ok: false; error: { code: string; message: string } };

/** Payload types by topic role, for code that wants the compiler to check what it sends. */
export interface TopicPayloads {
  availability: Availability;
  state: AgentState;
  events: AgentEvent;
  request: CommandRequest;
  response: CommandResponse;
  desired: DesiredMessage;
}
