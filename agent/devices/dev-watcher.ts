import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Backoff } from '../core/backoff.js';
import type { Logger } from '../core/logger.js';

/** What the devices module needs of a watcher; tests pass their own. */
export interface DevicesWatch {
  start(): void;
  stop(): void;
  /** Watches directories that appeared, drops the ones that went; cheap (a few stats). */
  refresh(): void;
}

export interface DevWatcherOptions {
  devRoot: string;
  /** Called once per burst of changes, settleMs after its first event. */
  onChange: () => void;
  logger: Logger;
  /** Between the restarts of a watch that failed or whose directory went away. */
  backoff: Backoff;
  settleMs?: number;
  /** Injected for tests; node's fs.watch otherwise. */
  watchFn?: typeof watch;
}

/**
 * udev makes the node, then its links, within a few milliseconds: one rescan for the burst,
 * started a fixed time after its first event (a trailing debounce could be put off for ever
 * by a steady stream of events).
 */
const SETTLE_MS = 40;

/**
 * Wakes the devices module when device nodes come or go, instead of it polling sysfs several
 * times a second (issue 14: that poll was ~0.4 % of a core on every idle robot). sysfs does not
 * reliably emit inotify events for USB, but devtmpfs does for the nodes the kernel creates in
 * /dev, and so does udev's /dev for its links: the watch is on <devRoot> (ttyUSB*, video*, the
 * udev aliases), <devRoot>/bus/usb and each bus under it (every USB device has a node there,
 * the camera's depth function only that), <devRoot>/serial/by-id and <devRoot>/v4l/by-id.
 * Directories that appear later (udev makes serial/by-id with the first serial device) are
 * picked up on the next event or refresh. Only create, delete and rename count: a write to a
 * device node can show as a 'change' on its directory and says nothing about hot-plug.
 *
 * A watch whose directory vanished (inotify then goes silent without an error) or that errored
 * is closed and opened again with backoff, never in a loop; meanwhile the devices module's slow
 * poll still sees every change.
 */
export class DevWatcher implements DevicesWatch {
  private readonly watched = new Map<string, { watcher: FSWatcher; ino: number }>();
  private flushTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private running = false;
  private failing = false;
  /** For tests and benches: how often it woke, rescanned and (re)opened a watch. */
  readonly counts = { events: 0, flushes: 0, opened: 0, failures: 0 };

  constructor(private readonly options: DevWatcherOptions) {}

  start(): void {
    this.running = true;
    this.refresh();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.flushTimer);
    clearTimeout(this.retryTimer);
    this.flushTimer = undefined;
    this.retryTimer = undefined;
    for (const { watcher } of this.watched.values()) watcher.close();
    this.watched.clear();
  }

  refresh(): void {
    if (!this.running) return;
    for (const [dir, entry] of this.watched) {
      if (inode(dir) !== entry.ino) this.drop(dir);
    }
    const root = this.options.devRoot;
    if (inode(root) === undefined) {
      this.fail(`${root} is not there`);
      return;
    }
    let failed: string | undefined;
    for (const dir of this.wanted()) {
      if (this.watched.has(dir)) continue;
      const ino = inode(dir);
      if (ino === undefined) continue;
      try {
        this.open(dir, ino);
      } catch (err) {
        failed ??= `${dir}: ${(err as Error).message}`;
      }
    }
    if (failed !== undefined) this.fail(failed);
    else if (this.watched.has(root)) this.recovered();
  }

  private wanted(): string[] {
    const root = this.options.devRoot;
    const usb = join(root, 'bus', 'usb');
    const buses = list(usb).map((bus) => join(usb, bus));
    return [root, usb, ...buses, join(root, 'serial', 'by-id'), join(root, 'v4l', 'by-id')];
  }

  private open(dir: string, ino: number): void {
    const watchFn = this.options.watchFn ?? watch;
    const watcher = watchFn(dir, { persistent: false }, (type) => this.onEvent(type));
    watcher.on('error', (err: Error) => {
      this.drop(dir);
      this.fail(`${dir}: ${err.message}`);
    });
    this.watched.set(dir, { watcher, ino });
    this.counts.opened += 1;
  }

  private drop(dir: string): void {
    this.watched.get(dir)?.watcher.close();
    this.watched.delete(dir);
  }

  private onEvent(type: string): void {
    this.counts.events += 1;
    if (type !== 'rename' || !this.running || this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.counts.flushes += 1;
      this.refresh();
      this.options.onChange();
    }, this.options.settleMs ?? SETTLE_MS);
  }

  /** One retry pending at a time, each further away; the poll covers the gap. */
  private fail(reason: string): void {
    this.counts.failures += 1;
    if (!this.failing) {
      this.failing = true;
      const message = 'device directories not watched; hot-plug is seen by the slower poll until this works again';
      this.options.logger.warn(message, { reason });
    }
    if (this.retryTimer || !this.running) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.refresh();
      // Nodes may have come or gone while nothing watched.
      if (!this.failing) this.options.onChange();
    }, this.options.backoff.next());
  }

  private recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    this.options.backoff.reset();
    this.options.logger.info('device directories watched again');
  }
}

function inode(path: string): number | undefined {
  try {
    const s = statSync(path);
    return s.isDirectory() ? s.ino : undefined;
  } catch {
    return undefined;
  }
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
