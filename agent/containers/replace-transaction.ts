import { AgentError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Engine } from '../docker/engine.js';
import type { ReplaceEntry, ReplaceJournal, ReplaceStep } from './replace-journal.js';
import { settleReplacement, type Settled } from './replace-recovery.js';

export interface ReplaceTransactionOptions {
  engine: Engine;
  journal: ReplaceJournal;
  logger: Logger;
  /** "update", "recreate": what the operator reads in a sentence about a journal that failed. */
  what: string;
  /** Fault injection for the crash tests only: called right after each journal write. */
  onStep?: (step: ReplaceStep) => void;
}

/** How the caller makes, starts and proves the new container; the transaction does the rest. */
export interface Replacement {
  /**
   * Before the old container stops: whatever needs no stop (resolving devices, making their
   * stable nodes), so the downtime holds only what cannot be done while the old one runs.
   */
  prepare?(): Promise<void>;
  /** Stops the old container (its spec's stopTimeout). */
  stop(): Promise<void>;
  /** Between the stop and the move aside: a recreate commits the old container's changes here. */
  afterStop?(): Promise<void>;
  /** Creates the new container under the container's name; its id. */
  create(): Promise<string>;
  start(id: string): Promise<void>;
  /** Called once the new container started: the downtime, old stop to new start, and its parts. */
  started?(id: string, downtimeMs: number, parts: DowntimeParts): Promise<void>;
  /** Proves the new container (an update); without it, a started container stands. */
  verify?(id: string): Promise<void>;
}

/** Milliseconds each part of the stop-to-start window took (the bench reports them). */
export interface DowntimeParts {
  stopMs: number;
  /** A recreate's commit of the old container's changes. */
  commitMs: number;
  renameMs: number;
  createMs: number;
  startMs: number;
}

/**
 * One journaled replacement of a container, for image updates, spec recreates and restores
 * alike: stop the old one, move it aside under another name, create and start the new one,
 * prove it if asked, and only then remove the old. Every step is journaled before it is taken,
 * so an agent killed anywhere finishes or undoes it at its next start (settleReplacement); a
 * failure before the point of no return is undone by `undo()`, the same way.
 */
export class ReplaceTransaction {
  private constructor(
    private readonly o: ReplaceTransactionOptions,
    readonly entry: ReplaceEntry,
  ) {}

  /**
   * Writes the journal's first entry. Throws what the write threw (a full state.dir): nothing has
   * changed, and the caller refuses in its own words.
   */
  static begin(o: ReplaceTransactionOptions, entry: ReplaceEntry): ReplaceTransaction {
    o.journal.write(entry);
    o.onStep?.(entry.step);
    return new ReplaceTransaction(o, entry);
  }

  /** Journals the next step; one that cannot be journaled is not taken. */
  step(step: ReplaceStep, extra: Partial<ReplaceEntry> = {}): void {
    // In memory only once on disk: what the entry says is what recovery would do.
    const next = { ...this.entry, ...extra, step };
    try {
      this.o.journal.write(next);
      Object.assign(this.entry, next);
    } catch (err) {
      const { code, message } = toErrorInfo(err, 'state_write_failed');
      const what = `could not journal the ${this.o.what} of ${this.entry.container} (${message}); stopped before ${step}`;
      throw new AgentError(code, what, { cause: err });
    }
    this.o.onStep?.(step);
  }

  /**
   * Runs the replacement to its end; returns the new container's id. A failure is thrown as it
   * came, with the journal at the step that failed: the caller undoes it (undo()), or leaves it
   * to recovery when the agent is stopping.
   */
  async run(r: Replacement): Promise<string> {
    const old = this.entry.from.containerId;
    await r.prepare?.();
    // A recreate begins at `stopping` (it has nothing to save first); an update from `preparing`.
    if (this.entry.step !== 'stopping') this.step('stopping');
    const t0 = Date.now();
    let mark = t0;
    const lap = () => {
      const now = Date.now();
      const took = now - mark;
      mark = now;
      return took;
    };
    await r.stop();
    const stopMs = lap();
    await r.afterStop?.();
    const commitMs = lap();
    this.step('renaming');
    await this.o.engine.renameContainer(old, this.entry.aside);
    const renameMs = lap();
    this.step('creating');
    const created = await r.create();
    const createMs = lap();
    this.step('starting', { newContainerId: created });
    await r.start(created);
    const startMs = lap();
    await r.started?.(created, Date.now() - t0, { stopMs, commitMs, renameMs, createMs, startMs });
    if (r.verify) {
      this.step('verifying');
      await r.verify(created);
    }
    // The point of no return, journaled: a crash after it removes the old container.
    this.step(r.verify ? 'verified' : 'removing');
    await this.o.engine.removeContainer(old).catch((err: unknown) => {
      const fields = { container: this.entry.aside, error: toErrorInfo(err) };
      this.o.logger.warn('could not remove the replaced container', fields);
    });
    this.clear();
    return created;
  }

  /** Whether the replacement passed its point of no return (only the old one's removal was left). */
  get committed(): boolean {
    return this.entry.step === 'verified' || this.entry.step === 'removing';
  }

  /**
   * Puts the old container back as it was (the new one removed). On failure the journal stays
   * and the error is thrown: recovery finishes it when the engine answers again.
   */
  async undo(): Promise<Settled> {
    if (this.entry.step !== 'preparing') {
      try {
        this.step('rolling-back');
      } catch (err) {
        this.entry.step = 'rolling-back';
        // The step before is journaled, and recovery undoes that the same way.
        const fields = { container: this.entry.container, error: toErrorInfo(err) };
        this.o.logger.warn(`could not journal the rollback of a ${this.o.what}`, fields);
      }
    }
    const outcome = await settleReplacement(this.o.engine, this.entry);
    this.clear();
    return outcome;
  }

  /** Ends the transaction: nothing left to finish or undo. */
  clear(): void {
    try {
      this.o.journal.clear();
    } catch (err) {
      this.o.logger.warn(`could not clear the ${this.o.what} journal`, { error: toErrorInfo(err) });
    }
  }
}
