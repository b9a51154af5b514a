import { Backoff } from './core/backoff.js';
import { toErrorInfo } from './core/errors.js';
import type { Logger } from './core/logger.js';
import type { EventBus } from './state/event-bus.js';
import type { StateStore } from './state/state-store.js';
import type { ModuleStatus } from './state/types.js';

/** A part of the agent with a lifecycle. start() may fail; the supervisor retries it. */
export interface AgentModule {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface SupervisorOptions {
  modules: AgentModule[];
  store: StateStore;
  bus: EventBus;
  logger: Logger;
  retry?: { initialMs: number; maxMs: number };
}

/**
 * Starts modules in the order given and stops them in reverse. A module that fails to start is
 * reported (log, event module.failed, state agent.modules) and retried with backoff while the
 * others run: one broken part never takes the daemon down.
 */
export class Supervisor {
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private readonly backoffs = new Map<string, Backoff>();
  private readonly started = new Set<string>();
  private stopping = false;

  constructor(private readonly options: SupervisorOptions) {
    const names = new Set<string>();
    for (const module of options.modules) {
      if (names.has(module.name)) throw new Error(`module name "${module.name}" used twice`);
      names.add(module.name);
    }
  }

  async startAll(): Promise<void> {
    for (const module of this.options.modules) {
      if (this.stopping) return;
      await this.startOne(module);
    }
  }

  /** Reverse order, each bounded by what is left of the budget, so SIGTERM ends in time. */
  async stopAll(budgetMs: number): Promise<void> {
    this.stopping = true;
    for (const timer of this.retryTimers.values()) clearTimeout(timer);
    this.retryTimers.clear();
    const deadline = Date.now() + budgetMs;
    for (const module of [...this.options.modules].reverse()) {
      if (!this.started.has(module.name)) continue;
      const left = Math.max(50, deadline - Date.now());
      try {
        await withDeadline(module.stop(), left, module.name);
        this.setStatus(module.name, { status: 'stopped', failures: 0 });
      } catch (err) {
        this.options.logger.warn('module did not stop cleanly', { target: module.name, error: err as Error });
      }
      this.started.delete(module.name);
    }
  }

  private async startOne(module: AgentModule): Promise<void> {
    const previous = this.options.store.get().agent.modules[module.name];
    this.setStatus(module.name, { status: 'starting', failures: previous?.failures ?? 0 });
    try {
      await module.start();
      this.started.add(module.name);
      this.backoffs.get(module.name)?.reset();
      this.setStatus(module.name, { status: 'running', failures: 0 });
      this.options.logger.debug('module started', { target: module.name });
    } catch (err) {
      // A half-started module may hold timers or sockets; give it the chance to let go.
      await module.stop().catch(() => undefined);
      this.scheduleRetry(module, err);
    }
  }

  private scheduleRetry(module: AgentModule, err: unknown): void {
    if (this.stopping) return;
    const retry = this.options.retry ?? { initialMs: 1000, maxMs: 60_000 };
    let backoff = this.backoffs.get(module.name);
    if (!backoff) {
      backoff = new Backoff(retry);
      this.backoffs.set(module.name, backoff);
    }
    const delay = backoff.next();
    const error = toErrorInfo(err, 'module_failed');
    const failures = backoff.attempts;
    const retryAt = new Date(Date.now() + delay).toISOString();
    this.setStatus(module.name, { status: 'failed', error, failures, retryAt });
    this.options.logger.error('module failed to start; will retry', { target: module.name, error, retryInMs: delay });
    this.options.bus.emit('module.failed', { module: module.name, error, failures, retryAt });
    this.retryTimers.set(
      module.name,
      setTimeout(() => {
        this.retryTimers.delete(module.name);
        void this.startOne(module);
      }, delay),
    );
  }

  private setStatus(name: string, status: ModuleStatus): void {
    this.options.store.update('agent', (agent) => ({ ...agent, modules: { ...agent.modules, [name]: status } }));
  }
}

function withDeadline(promise: Promise<void>, ms: number, name: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<void>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name} did not stop within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
