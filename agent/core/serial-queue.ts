/**
 * Runs functions one after another, each once the one before has settled (resolved or failed):
 * what the containers loop, the update flow and the device sync each use to never interleave two
 * changes. Each caller gets its own function's outcome; a failure does not stop the queue, and
 * `onError` (when given) hears of it where nobody else may be listening.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly onError?: (err: unknown) => void) {}

  run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.catch(() => undefined).then(fn);
    this.tail = run.catch((err: unknown) => this.onError?.(err));
    return run;
  }

  /** Resolves once everything queued so far has settled. */
  idle(): Promise<void> {
    return this.tail.then(
      () => undefined,
      () => undefined,
    );
  }
}
