import { AgentError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Engine } from '../docker/engine.js';
import type { ReplaceEntry, ReplaceJournal, ReplaceStep } from './replace-journal.js';
import { settleReplacement, temporaryName, type Settled } from './replace-recovery.js';

export interface ReplaceTransactionOptions {
  engine: Engine;
  journal: ReplaceJournal;
  logger: Logger;
  /** "update", "recreate": what the operator reads in a sentence about a journal that failed. */
  what: string;
  /**
   * Fault injection for the crash tests only: called right after each journal write, and
   * between the stop and the start of a replacement that creates ahead (`starting`, not
   * journaled there: `stopping` covers it).
   */
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
  /**
   * Between the stop and the move aside: a recreate commits the old container's changes here,
   * so its new container can only be created after the stop (from the commit).
   */
  afterStop?(): Promise<void>;
  /**
   * Creates the new container; its id. A create that declares the parameter (`(temporary) =>`)
   * and no afterStop: called before the stop, and creates under `temporary` (the old one still
   * holds the name and runs; the new one is renamed once it started). One that does not (`() =>`,
   * as every caller before it): called after the stop, creates under the container's name.
   */
  create(temporary?: string): Promise<string>;
  start(id: string): Promise<void>;
  /**
   * Called once the new container started and holds the name: the downtime, old stop to new
   * start, and its parts.
   */
  started?(id: string, downtimeMs: number, parts: DowntimeParts): Promise<void>;
  /** Proves the new container (an update); without it, a started container stands. */
  verify?(id: string): Promise<void>;
}

/**
 * Milliseconds each part of the stop-to-start window took (the bench reports them). A
 * replacement that creates ahead has only its stop and start in the window (the others 0), and
 * says what the create before and the renames after cost.
 */
export interface DowntimeParts {
  stopMs: number;
  /** A recreate's commit of the old container's changes. */
  commitMs: number;
  renameMs: number;
  createMs: number;
  startMs: number;
  /** Outside the window: the create under the temporary name, before the stop. */
  createdBeforeMs?: number;
  /** Outside the window: both renames (old aside, new to the name), after the start. */
  renamedAfterMs?: number;
}

/**
 * One journaled replacement of a container, for image updates, spec recreates and restores
 * alike: create the new one under a temporary name, stop the old one and start the new one,
 * move the old one aside and give the new one the name (a recreate that commits the old one's
 * changes: stop, commit, move aside, create, start), prove it if asked, and only then remove
 * the old. Every step is journaled before it is taken, so an agent killed anywhere finishes or
 * undoes it at its next start (settleReplacement); a failure before the point of no return is
 * undone by `undo()`, the same way.
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
    await r.prepare?.();
    // A recreate that commits the old container's changes can only create from the commit,
    // after the stop; one whose create takes the temporary name is created while the old runs.
    const ahead = !r.afterStop && r.create.length > 0;
    const created = ahead ? await this.createAhead(r) : await this.createAfterStop(r);
    if (r.verify) {
      this.step('verifying');
      await r.verify(created);
    }
    // The point of no return, journaled: a crash after it removes the old container.
    this.step(r.verify ? 'verified' : 'removing');
    await this.o.engine.removeContainer(this.entry.from.containerId).catch((err: unknown) => {
      const fields = { container: this.entry.aside, error: toErrorInfo(err) };
      this.o.logger.warn('could not remove the replaced container', fields);
    });
    this.clear();
    return created;
  }

  /**
   * Create under a temporary name, stop the old, start the new at once, then the renames: the
   * downtime is the engine's stop and start and nothing else. No journal write between the
   * two either (each is an fsync, ~10 ms on this machine, more on a robot's eMMC): `stopping`,
   * journaled with the new container's id, covers both, and recovery undoes them alike.
   */
  private async createAhead(r: Replacement): Promise<string> {
    const old = this.entry.from.containerId;
    const name = this.entry.container;
    // Journaled before the create: a crash during it leaves a container recovery finds by name.
    this.step('creating', { next: temporaryName(name) });
    const c0 = Date.now();
    const created = await r.create(this.entry.next);
    const createdBeforeMs = Date.now() - c0;
    this.step('stopping', { newContainerId: created });
    const t0 = Date.now();
    await r.stop();
    const t1 = Date.now();
    // Not a journal write: the fault injection's crash point between the stop and the start.
    this.o.onStep?.('starting');
    await r.start(created);
    const t2 = Date.now();
    // Out of the window now. A running container can be renamed (Docker 20.10 allows it).
    this.step('renaming');
    await this.o.engine.renameContainer(old, this.entry.aside);
    await this.o.engine.renameContainer(created, name);
    const renamedAfterMs = Date.now() - t2;
    const parts = { stopMs: t1 - t0, commitMs: 0, renameMs: 0, createMs: 0, startMs: t2 - t1 };
    await r.started?.(created, t2 - t0, { ...parts, createdBeforeMs, renamedAfterMs });
    return created;
  }

  /** Stop, commit, move the old one aside, create under the name, start: all in the window. */
  private async createAfterStop(r: Replacement): Promise<string> {
    const old = this.entry.from.containerId;
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
