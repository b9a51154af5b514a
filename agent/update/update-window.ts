import cron from 'node-cron';

/**
 * The maintenance window: open for `minutes` after each time the cron expression names. Asked
 * minute by minute backwards (node-cron's matcher), so any expression node-cron accepts works.
 */
export class UpdateWindow {
  private readonly task: ReturnType<typeof cron.createTask> | undefined;
  /** The last opening found, and the minute the search began at. */
  private found: { from: number; next: Date } | undefined;

  constructor(private readonly window: { cron: string; minutes: number } | undefined) {
    this.task = window ? cron.createTask(window.cron, () => undefined, { name: 'update-window' }) : undefined;
  }

  isOpen(now = new Date()): boolean {
    if (!this.window || !this.task) return true;
    const minute = new Date(now);
    minute.setSeconds(0, 0);
    for (let i = 0; i < this.window.minutes; i += 1) {
      if (this.task.match(new Date(minute.getTime() - i * 60_000))) return true;
    }
    return false;
  }

  /**
   * When it opens next, looked for up to 8 days ahead (null: no window, or none that soon). The
   * search matches minute by minute (12 ms for a daily window, 73 ms for a weekly one, here) and
   * the containers loop asks on every pass, so an answer is kept while it stands: found from
   * minute F, opening O, it is the answer for any time from F until O.
   */
  nextOpening(now = new Date()): Date | null {
    if (!this.window || !this.task) return null;
    const minute = new Date(now);
    minute.setSeconds(0, 0);
    const kept = this.found;
    if (kept && kept.from <= minute.getTime() && minute.getTime() < kept.next.getTime()) return new Date(kept.next);
    for (let i = 1; i <= 8 * 24 * 60; i += 1) {
      const at = new Date(minute.getTime() + i * 60_000);
      if (this.task.match(at)) {
        this.found = { from: minute.getTime(), next: at };
        return new Date(at);
      }
    }
    return null;
  }

  destroy(): void {
    void this.task?.destroy();
  }
}
