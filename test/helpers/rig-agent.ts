import assert from 'node:assert/strict';
import type { AgentEvent } from '../../agent/state/event-bus.js';
import { needRig, rig } from '../setup.js';
import { startAgent, type AgentUnderTest } from './agent-harness.js';
import { cleanEngine } from './engine-cli.js';
import { MqttProbe } from './mqtt-probe.js';
import { waitUntil } from './wait.js';

/**
 * The set-up most rig tests share: one agent per test, built in this process on the rig's
 * engine, its embedded broker watched by a probe on `<base>/#`, every bus event recorded, and an
 * engine cleaned before and after each test. Call it once inside a `describe`.
 */
export interface RigAgent {
  /** The agent the running test started (throws when none was started). */
  readonly subject: AgentUnderTest;
  /** The probe on the agent's embedded broker (throws when no agent was started). */
  readonly probe: MqttProbe;
  /** Every event the agent raised since the test began. */
  readonly events: AgentEvent[];
  /** Whether this test started an agent. */
  readonly started: boolean;
  /**
   * Starts the agent from a config document (on the rig's engine unless the document names
   * another socket) and waits until `ready` holds (by default: Docker available).
   */
  start: (doc: Record<string, any>, ready?: Readiness) => Promise<AgentUnderTest>;
  /** A request on the agent's command topic with a fresh id; resolves with the response. */
  ask: (command: string, body?: Record<string, unknown>, ms?: number) => Promise<Record<string, unknown>>;
  /** Stops this test's agent now (the next start builds another). */
  stop: () => Promise<void>;
}

export interface Readiness {
  until: (subject: AgentUnderTest) => boolean;
  what: string;
  ms?: number;
}

const DOCKER_AVAILABLE: Readiness = {
  until: (s) => s.agent.store.get().docker.available,
  what: 'docker available',
  ms: 10_000,
};

export function useRigAgent(o: { clean?: boolean } = {}): RigAgent {
  const clean = o.clean ?? true;
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;
  const events: AgentEvent[] = [];
  let seq = 0;

  async function stop(): Promise<void> {
    await probe?.close();
    await subject?.stop();
    probe = undefined;
    subject = undefined;
  }

  beforeEach(function () {
    needRig(this);
    events.length = 0;
    if (clean) cleanEngine();
  });
  afterEach(async () => {
    await stop();
    if (clean && rig()) cleanEngine();
  });

  return {
    get subject() {
      if (!subject) throw new Error('this test started no agent');
      return subject;
    },
    get probe() {
      if (!probe) throw new Error('this test started no agent');
      return probe;
    },
    events,
    get started() {
      return subject !== undefined;
    },
    start: async (doc, ready = DOCKER_AVAILABLE) => {
      const started = await startAgent({ ...doc, docker: { socketPath: rig().docker.socketPath, ...doc.docker } });
      subject = started;
      started.agent.bus.subscribe((e) => events.push(e));
      probe = await MqttProbe.connect(`mqtt://127.0.0.1:${started.agent.embeddedBroker!.port}`, {
        protocolVersion: 4,
      });
      await probe.subscribe(`${started.base}/#`);
      await waitUntil(() => ready.until(started), ready.ms ?? 10_000, ready.what);
      return started;
    },
    ask: (command, body = {}, ms = 60_000) => {
      if (!probe || !subject) throw new Error('this test started no agent');
      seq += 1;
      const id = `${command}-${Date.now()}-${seq}`;
      return probe.request(subject.base, command, { id, ...body }, ms);
    },
    stop,
  };
}

/** The result of a response that must be a success (the response in the message when not). */
export function okResult<T = Record<string, any>>(response: Record<string, unknown>): T {
  assert.equal(response.ok, true, JSON.stringify(response));
  return response.result as T;
}

/** A response's error code, or 'ok'. */
export function codeOf(response: Record<string, unknown>): string {
  return response.ok ? 'ok' : (response.error as { code: string }).code;
}
