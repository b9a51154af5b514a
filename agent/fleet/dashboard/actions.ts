import { AgentError } from '../../core/errors.js';
import type { AgentEvent } from '../../state/event-bus.js';
import { ACTION_COMMANDS, LIMITS, type ActionCommand, type ServerMessage } from './protocol.js';
import type { RequestSender } from './send-request.js';

/** The arguments each action takes from a page: checked here, then checked again by each robot. */
const ARGS: Record<ActionCommand, { required: string[]; strings: string[]; booleans: string[] }> = {
  update: { required: ['container', 'image'], strings: ['container', 'image'], booleans: ['force'] },
  snapshot: { required: ['container'], strings: ['container', 'message', 'save'], booleans: ['push'] },
  restore: { required: ['container', 'image'], strings: ['container', 'image'], booleans: [] },
  restart: { required: ['name'], strings: ['name'], booleans: [] },
  start: { required: ['name'], strings: ['name'], booleans: [] },
  stop: { required: ['name'], strings: ['name'], booleans: [] },
};
/** Commands that pull, push or wait for a window: minutes, not seconds. */
const LONG: ReadonlySet<ActionCommand> = new Set(['update', 'snapshot', 'restore']);

export interface ActionRunnerOptions {
  /** How long a quick command (start, stop, restart) may take to be answered. */
  timeoutMs: number;
  /** How long a transfer (update, snapshot, restore) may take to be answered. */
  longTimeoutMs: number;
  /** Robots asked at once per action. */
  concurrency?: number;
  /** Actions running at once; past it a new one is refused (busy). */
  maxActions?: number;
}

export interface ActionRequest {
  id: string;
  command: ActionCommand;
  robots: string[];
  args: Record<string, unknown>;
}

/**
 * Runs an action on a selection: one MQTT request per robot through the RequestSender, a few at
 * a time, and reports each robot's progress (its `<command>.progress` events carrying the
 * request id) and outcome (its answer, with the robot's own error code) as they come.
 */
export class ActionRunner {
  private running = 0;
  /** Request id -> the action and robot it is for, while it waits for its answer. */
  private readonly requests = new Map<string, { action: string; robot: string; command: ActionCommand }>();

  constructor(
    private readonly sender: RequestSender,
    private readonly report: (m: ServerMessage) => void,
    private readonly o: ActionRunnerOptions,
  ) {}

  /** Checks the request; throws an AgentError a page can show; runs the rest in the background. */
  start(a: ActionRequest): void {
    check(a);
    if (this.running >= (this.o.maxActions ?? 32)) {
      throw new AgentError('busy', `${this.running} actions are running; wait for one to finish`);
    }
    this.running += 1;
    // run never rejects by design (each robot's outcome is a response); the catch keeps it so.
    void this.run(a)
      .catch(() => undefined)
      .finally(() => {
        this.running -= 1;
      });
  }

  /** A robot's event: progress when it carries the id of one of our requests. */
  onEvent(robot: string, event: AgentEvent): void {
    const r = typeof event.id === 'string' ? this.requests.get(event.id) : undefined;
    if (!r || r.robot !== robot) return;
    const progress =
      typeof event.current === 'number' && typeof event.total === 'number' && event.total > 0
        ? { current: event.current, total: event.total }
        : null;
    this.report({
      t: 'action',
      action: r.action,
      robot,
      command: r.command,
      phase: 'progress',
      progress,
      event: event.type,
    });
  }

  private async run(a: ActionRequest): Promise<void> {
    const queue = [...new Set(a.robots)];
    const timeout = LONG.has(a.command) ? this.o.longTimeoutMs : this.o.timeoutMs;
    const worker = async () => {
      for (let robot = queue.shift(); robot !== undefined; robot = queue.shift()) {
        this.report({ t: 'action', action: a.id, robot, command: a.command, phase: 'sent' });
        const response = await this.sender.send(robot, a.command, a.args, timeout, (id) => {
          this.requests.set(id, { action: a.id, robot: robot!, command: a.command });
        });
        this.requests.delete(response.id);
        this.report({
          t: 'action',
          action: a.id,
          robot,
          command: a.command,
          phase: 'done',
          ok: response.ok,
          ...(response.ok
            ? { result: response.result }
            : { error: response.error ?? { code: 'internal', message: 'no error given' } }),
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency ?? 16, queue.length) }, worker));
  }
}

/** The request as a page sent it, in the shape the robots' schemas take (they check it again). */
function check(a: ActionRequest): void {
  const bad = (why: string) => new AgentError('invalid_action', why);
  if (typeof a.id !== 'string' || !/^[\w-]{1,64}$/.test(a.id))
    throw bad('an action needs an id of 1 to 64 letters, digits, - or _');
  if (!(ACTION_COMMANDS as readonly string[]).includes(a.command)) {
    throw bad(`unknown action ${String(a.command)}; the dashboard sends ${ACTION_COMMANDS.join(', ')}`);
  }
  if (!Array.isArray(a.robots) || a.robots.length === 0 || a.robots.length > LIMITS.maxSelection) {
    throw bad(`select 1 to ${LIMITS.maxSelection} robots`);
  }
  if (a.robots.some((r) => typeof r !== 'string' || !/^[^/+#\s]{1,128}$/.test(r)))
    throw bad('a robot name in the selection is not valid');
  if (typeof a.args !== 'object' || a.args === null || Array.isArray(a.args))
    throw bad('the arguments must be an object');
  const spec = ARGS[a.command];
  for (const key of spec.required) if (a.args[key] === undefined) throw bad(`${a.command} needs ${key}`);
  for (const [key, value] of Object.entries(a.args)) {
    if (spec.strings.includes(key)) {
      if (typeof value !== 'string' || value.length === 0 || value.length > 512)
        throw bad(`${key} must be text of 1 to 512 characters`);
    } else if (spec.booleans.includes(key)) {
      if (typeof value !== 'boolean') throw bad(`${key} must be true or false`);
    } else throw bad(`${a.command} takes no ${key}`);
  }
}
