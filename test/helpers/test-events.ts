/*
 * Events only tests raise (markers to wait for, an event nobody else knows), declared so the
 * typed bus takes them. Module augmentation: the agent's own emits stay checked against
 * agent/state/events.ts; a test file that raises one of these imports this file.
 */
declare module '../../agent/state/events.js' {
  interface AgentEvents {
    'test.offline': { n: number };
    'test.marker': { note: string };
    'x.y': Record<string, never>;
  }
}

export {};
