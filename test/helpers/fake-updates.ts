import type { UpdatesPort } from '../../agent/containers/containers-module.js';
import type { ReplaceJob } from '../../agent/containers/update-intents.js';
import type { UpdateOutcome } from '../../agent/state/types.js';

/**
 * update/ as the containers loop sees it, for tests of the loop alone: gates open, nothing to
 * pull, and a replacement that does what `replace` says (by default: done, changing nothing).
 */
export function fakeUpdates(o: { replace?: (job: ReplaceJob) => Promise<UpdateOutcome> } = {}): UpdatesPort {
  const done = (job: ReplaceJob, status: UpdateOutcome['status']): UpdateOutcome => ({
    status,
    container: job.container,
    from: null,
    to: job.image,
    at: new Date().toISOString(),
  });
  return {
    history: { rolledBack: new Map() },
    retryAt: () => undefined,
    gate: () => ({ windowOpen: true, nextWindow: null, locked: false }),
    lockMaxWaitMs: 60_000,
    needsPull: async () => false,
    pull: async () => undefined,
    replace: async (job) => (o.replace ? o.replace(job) : done(job, 'done')),
    noteWaiting: () => undefined,
    lockedTooLong: () => {
      throw new Error('the fake inhibit lock is never there');
    },
    upToDate: async (job) => done(job, 'up_to_date'),
    retryMessage: (_container, err) => err as Error,
    cancel: () => undefined,
  };
}
