// What the page knows: the server's replay and changes, kept outside preact so that thousands of
// robots cost one Map, and a burst of frames one render (coalesced on the next animation frame).

export const store = {
  robots: new Map(),
  /** Bumped on every change of robots, so views can memoise on it. */
  version: 0,
  role: null,
  staleAfterMs: 180_000,
  maxSelection: 2000,
  connected: false,
  replayed: false,
  warning: null,
  /** The open robot page: its sections and recent events. */
  watching: null,
  sections: {},
  events: [],
  logs: null,
  /** Action id -> { id, command, args, at, robots: Map<robot, outcome> }, newest last (bounded). */
  actions: new Map(),
  /** Robot -> its latest action outcome, for the table's progress column. */
  lastAction: new Map(),
  errors: [],
};

const listeners = new Set();
let scheduled = false;

export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function changed() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    for (const fn of listeners) fn();
  });
}

const MAX_ACTIONS = 20;
const MAX_EVENTS = 200;
const MAX_ERRORS = 5;

/** One message from the server (agent/fleet/dashboard/protocol.ts). */
export function apply(m) {
  switch (m.t) {
    case 'hello':
      store.role = m.role;
      store.staleAfterMs = m.staleAfterMs;
      store.maxSelection = m.maxSelection;
      store.robots = new Map();
      store.replayed = false;
      break;
    case 'robots':
      for (const r of m.robots) store.robots.set(r.robot, r);
      for (const name of m.gone ?? []) store.robots.delete(name);
      store.version += 1;
      break;
    case 'replayed':
      store.replayed = true;
      store.warning = m.warning;
      window.dashboardReplayedAt = performance.now();
      break;
    case 'sections':
      if (m.robot !== store.watching) return;
      store.sections = { ...store.sections, ...m.sections };
      break;
    case 'events':
      if (m.robot !== store.watching) return;
      store.events = [...m.events.slice().reverse(), ...store.events].slice(0, MAX_EVENTS);
      break;
    case 'action':
      actionOutcome(m);
      break;
    case 'logs':
      store.logs = m;
      break;
    case 'error':
      store.errors = [...store.errors, { ...m, at: Date.now() }].slice(-MAX_ERRORS);
      if (m.ref && store.actions.has(m.ref)) store.actions.get(m.ref).refused = m;
      break;
    default:
      return;
  }
  changed();
}

export function startAction(id, command, args, robots) {
  store.actions.set(id, {
    id,
    command,
    args,
    at: Date.now(),
    robots: new Map(robots.map((r) => [r, { phase: 'asked' }])),
  });
  while (store.actions.size > MAX_ACTIONS) store.actions.delete(store.actions.keys().next().value);
  changed();
}

function actionOutcome(m) {
  let action = store.actions.get(m.action);
  if (!action) {
    // Started by another page: shown all the same.
    action = { id: m.action, command: m.command, args: {}, at: Date.now(), robots: new Map() };
    store.actions.set(m.action, action);
    while (store.actions.size > MAX_ACTIONS) store.actions.delete(store.actions.keys().next().value);
  }
  const before = action.robots.get(m.robot) ?? {};
  const outcome = {
    ...before,
    phase: m.phase,
    ...(m.phase === 'progress'
      ? { progress: m.progress ?? before.progress, event: m.event, progressEvents: (before.progressEvents ?? 0) + 1 }
      : {}),
    ...(m.phase === 'done' ? { ok: m.ok, error: m.error, result: m.result } : {}),
  };
  action.robots.set(m.robot, outcome);
  store.lastAction.set(m.robot, { command: m.command, ...outcome });
}
