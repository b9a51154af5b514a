import type { AgentEvent } from '../state/event-bus.js';
import type { StateSummary } from './summary.js';
import type { AgentState, StateSection } from '../state/types.js';

/**
 * Every topic the agent uses and the payload that travels on it: the MQTT contract in one
 * place (documented in docs/mqtt-api.md, schemas in docs/schemas/).
 */
export interface Topics {
  /** Retained, QoS 1: "online" | "offline" (also the last will). */
  availability: string;
  /** Retained JSON StateSummary (at most 1 KiB): what a fleet table shows of the robot. */
  state: string;
  /** Retained JSON of one section of the AgentState in full, republished when it changes. */
  stateSection(section: StateSection): string;
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
  /**
   * Why an MQTT 5 response topic from a request must not be published to, or undefined when it
   * may. Whoever can publish a request chooses it: it must be a valid topic name (or the broker
   * drops the robot for a protocol error) and must not be one of the fleet's own topics (the
   * robot would publish on another robot's desired state or requests on the sender's behalf).
   */
  responseTopicProblem(topic: string): string | undefined;
}

/** Longest MQTT 5 response topic the agent answers on, in UTF-8 bytes. */
export const MAX_RESPONSE_TOPIC_BYTES = 256;
/** Largest MQTT 5 correlation data the agent echoes back. */
export const MAX_CORRELATION_BYTES = 256;

/**
 * Why a topic cannot be published to (a name the broker refuses, dropping the connection for
 * some), or undefined. Applies to every publish: the link checks before anything is sent.
 */
export function publishTopicProblem(topic: string): string | undefined {
  if (topic.length === 0) return 'the topic is empty';
  if (topic.includes('+') || topic.includes('#')) return 'the topic holds a wildcard (+ or #)';
  if (topic.includes('\u0000')) return 'the topic holds a NUL character';
  // A lone surrogate has no UTF-8 form: it would go out as U+FFFD, to a topic nobody named.
  if (Buffer.from(topic, 'utf8').toString('utf8') !== topic) return 'the topic is not valid UTF-8';
  if (Buffer.byteLength(topic, 'utf8') > 65_535) return 'the topic is longer than MQTT allows (65,535 bytes)';
  return undefined;
}

export function buildTopics(baseTopic: string, robotId: string): Topics {
  const b = `${baseTopic}/${robotId}`;
  const requestPrefix = `${b}/request/`;
  return {
    availability: `${b}/availability`,
    state: `${b}/state`,
    stateSection: (section) => `${b}/state/${section}`,
    events: `${b}/events`,
    desired: `${b}/desired`,
    requests: `${requestPrefix}+`,
    request: (command) => requestPrefix + command,
    response: (command) => `${b}/response/${command}`,
    commandOf: (topic) => (topic.startsWith(requestPrefix) ? topic.slice(requestPrefix.length) : undefined),
    responseTopicProblem: (topic) => {
      const problem = publishTopicProblem(topic);
      if (problem) return problem;
      if (Buffer.byteLength(topic, 'utf8') > MAX_RESPONSE_TOPIC_BYTES) {
        return `the topic is longer than ${MAX_RESPONSE_TOPIC_BYTES} bytes`;
      }
      if (topic.startsWith('$')) return 'the topic starts with $ (broker topics)';
      // U+FFFD is what invalid UTF-8 from the wire decodes to; control characters have no place in a topic.
      // eslint-disable-next-line no-control-regex -- control characters are what this test looks for
      if (/[\u0001-\u001f\u007f-\u009f\ufffd]/.test(topic)) {
        return 'the topic holds control characters or invalid UTF-8';
      }
      if (topic === baseTopic || topic.startsWith(`${baseTopic}/`)) {
        return `the topic is inside the fleet's own topics (${baseTopic}/...)`;
      }
      return undefined;
    },
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
  | { id: string | null; ok: false; error: { code: string; message: string; reason?: string } };

/**
 * What the fleet asks for on <b>/desired (docs/schemas/desired.json), as containers/desired-state.ts
 * hands it on after its checks: images are familiar references.
 */
export interface DesiredMessage {
  containers: Record<string, { image?: string; enabled?: boolean }>;
  version?: string | number;
}

/** Payload types by topic role, for code that wants the compiler to check what it sends. */
export interface TopicPayloads {
  availability: Availability;
  state: StateSummary;
  stateSection: AgentState[StateSection];
  events: AgentEvent;
  request: CommandRequest;
  response: CommandResponse;
  desired: DesiredMessage;
}
