import cron from 'node-cron';

/**
 * The maintenance window: open for `minutes` after each time the cron expression names. Asked
 * minute by minute backwards (node-cron's matcher), so any expression node-cron accepts works.
 */
export class UpdateWindow {
  private readonly task: ReturnType<typeof cron.createTask> | undefined;

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

  /** When it opens next, looked for up to 8 days ahead (null: no window, or none that soon). */
  nextOpening(now = new Date()): Date | null {
    if (!this.window || !this.task) return null;
    const minute = new Date(now);
    minute.setSeconds(0, 0);
    for (let i = 1; i <= 8 * 24 * 60; i += 1) {
      const at = new Date(minute.getTime() + i * 60_000);
      if (this.task.match(at)) return at;
    }
    return null;
  }

  destroy(): void {
    void this.task?.destroy();
  }
}
