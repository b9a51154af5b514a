import { AgentError } from '../core/errors.js';
import type { ContainerSpec } from '../config/types.js';
import type { UpdateOutcome } from '../state/types.js';
import type { ContainerExecutor } from './container-executor.js';

/**
 * What a replacement is done with: the containers loop's executor (devices, create, start, stop)
 * and the container's spec. Given by the loop at each replacement, which it runs in its own turn.
 */
export interface ReplaceTarget {
  executor: Pick<ContainerExecutor, 'prepareDevices' | 'create' | 'start' | 'stop'>;
  spec: ContainerSpec;
}

/** An update the loop is asked to make: a new image for a container that exists. */
export interface ReplaceJob {
  container: string;
  image: string;
  reason: 'desired' | 'command' | 'check' | 'rollback' | 'restore';
  /** The maintenance window does not hold it back (update force, rollback, restore). */
  force?: boolean;
  requestId?: string;
  /**
   * A command's pin of its image in the desired state: called inside the replacement (in the
   * loop's turn) once the update is sure to be tried (journaled), is done already, or waits for
   * its container to be created. Never for an update refused before it changed anything (a full
   * state.dir, a failed pull): a refusal changes nothing.
   */
  pin?: () => Promise<void>;
  /** A snapshot this robot committed itself (restore): images.verify does not apply to it. */
  ownImage?: boolean;
  /** Set by the flow: what the new container is created from (images.verify: repository@digest). */
  runImage?: string;
  /** Set by the flow once update.started was emitted (a pull in the background, then the swap). */
  announced?: boolean;
  /** Set once the update's own pull is done (a tag the check saw move is not pulled twice). */
  pulled?: boolean;
}

/**
 * - `waited`: a command waits for the outcome (update, rollback, restore);
 * - `scheduled`: a command outside the window was answered `scheduled` and its image pinned;
 *   the outcome goes out as update.* events with its request id only;
 * - `loop`: the loop's own update (the desired state named a new image, or a tag moved).
 */
type IntentKind = 'waited' | 'scheduled' | 'loop';

interface Intent {
  job: ReplaceJob;
  kind: IntentKind;
  done: Promise<UpdateOutcome>;
  resolve: (result: UpdateOutcome) => void;
  reject: (err: unknown) => void;
}

/**
 * The updates asked of the containers loop, one per container (bounded by the config's
 * containers), and the outcome the loop reports for each: commands and the update check write
 * here and wait, the loop reads here when it plans and settles here when a replacement ends.
 */
export class UpdateIntents {
  private readonly byContainer = new Map<string, Intent>();

  /** A command's update: resolves with the loop's outcome. One waits behind another of its container. */
  async write(job: ReplaceJob, written: () => void): Promise<UpdateOutcome> {
    for (;;) {
      const earlier = this.byContainer.get(job.container);
      if (earlier?.kind !== 'waited') break;
      await earlier.done.catch(() => undefined);
    }
    const intent = this.add(job, 'waited');
    written();
    return intent.done;
  }

  /** A command answered `scheduled`: its image waits for the window, nobody waits for it. */
  schedule(job: ReplaceJob): void {
    const earlier = this.byContainer.get(job.container);
    if (earlier?.kind === 'waited') return;
    this.add(job, 'scheduled');
  }

  /** The image a command outside the window waits for, if one does. */
  scheduledImage(container: string): string | undefined {
    const intent = this.byContainer.get(container);
    return intent?.kind === 'scheduled' ? intent.job.image : undefined;
  }

  /** The job for a planned replacement: a command's when it asked for that image, else the loop's own. */
  jobFor(container: string, image: string): ReplaceJob {
    const known = this.byContainer.get(container);
    if (known && known.job.image === image) return known.job;
    // A command's intent is the image planned (the loop plans with it); any other was superseded,
    // and a command still waiting for it is told so rather than left waiting.
    if (known?.kind === 'waited') {
      const message = `the update of ${container} to ${known.job.image} was superseded by one to ${image}`;
      this.settle(container, { error: new AgentError('update_superseded', message) });
    }
    return this.add({ container, image, reason: 'desired' }, 'loop').job;
  }

  /**
   * The update check saw the container's tag move: the loop's own update of the same reference,
   * begun with its pull. Not when a command's update of the container is asked already.
   */
  check(container: string, image: string): ReplaceJob | undefined {
    const known = this.byContainer.get(container);
    if (known && known.kind !== 'loop') return undefined;
    return this.add({ container, image, reason: 'check' }, 'loop').job;
  }

  /** Commands that wait for their update: the loop plans their image, and no backoff holds them. */
  waited(): ReplaceJob[] {
    return [...this.byContainer.values()].filter((i) => i.kind === 'waited').map((i) => i.job);
  }

  /** Commands' updates (waited or scheduled), by container. */
  asked(): ReplaceJob[] {
    return [...this.byContainer.values()].filter((i) => i.kind !== 'loop').map((i) => i.job);
  }

  /** Containers whose asked update skips the window. */
  forced(): Set<string> {
    return new Set(
      [...this.byContainer.values()].filter((i) => i.kind !== 'loop' && i.job.force).map((i) => i.job.container),
    );
  }

  /**
   * The loop's outcome for a container's update: the command waiting for it gets it. Answers
   * who asked: 'waited' (the command has the error), 'scheduled' or 'loop' (nobody listens).
   */
  settle(container: string, outcome: { result: UpdateOutcome } | { error: unknown }): IntentKind | undefined {
    const intent = this.byContainer.get(container);
    if (!intent) return undefined;
    this.byContainer.delete(container);
    if ('result' in outcome) intent.resolve(outcome.result);
    else intent.reject(outcome.error);
    return intent.kind;
  }

  /** The agent stops: a command still waiting is answered; a pinned image stays for the next start. */
  abandon(): void {
    const error = new AgentError('update_aborted', 'the agent stopped before the update ran; it will run again');
    for (const container of [...this.byContainer.keys()]) this.settle(container, { error });
  }

  private add(job: ReplaceJob, kind: IntentKind): Intent {
    let resolve: (result: UpdateOutcome) => void = () => undefined;
    let reject: (err: unknown) => void = () => undefined;
    const done = new Promise<UpdateOutcome>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Only a waiting command reads the outcome: the others' rejections are reported by the loop.
    if (kind !== 'waited') done.catch(() => undefined);
    const intent = { job, kind, done, resolve, reject };
    this.byContainer.set(job.container, intent);
    return intent;
  }
}
