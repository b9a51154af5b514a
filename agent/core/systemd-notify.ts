import { execFile } from 'node:child_process';

export interface SystemdNotifierOptions {
  env: NodeJS.ProcessEnv;
  /** Sends one notification; systemd-notify by default (Node has no unix datagram sockets). */
  send?: (message: string) => Promise<void>;
  onError?: (err: unknown) => void;
}

/**
 * sd_notify for a Type=notify unit: READY=1 once every module started, STOPPING=1 on the way
 * out, and WATCHDOG=1 from a timer on the main event loop at half the unit's WatchdogSec, so an
 * event loop that stops turning gets the agent killed and restarted. Messages go through
 * `systemd-notify --pid=<agent>`: sent in the agent's name (root may), so systemd attributes
 * them to the main process even after the short-lived child is gone. Off, and free, where
 * NOTIFY_SOCKET is not set.
 */
export class SystemdNotifier {
  private timer: NodeJS.Timeout | undefined;
  private readonly send: (message: string) => Promise<void>;

  constructor(private readonly o: SystemdNotifierOptions) {
    this.send = o.send ?? ((message) => runSystemdNotify(message, o.env));
  }

  get enabled(): boolean {
    return Boolean(this.o.env.NOTIFY_SOCKET);
  }

  /** Half of WATCHDOG_USEC in milliseconds, when the watchdog is on for this process. */
  get watchdogIntervalMs(): number | undefined {
    const usec = Number(this.o.env.WATCHDOG_USEC);
    const pid = this.o.env.WATCHDOG_PID;
    if (!this.enabled || !Number.isFinite(usec) || usec <= 0) return undefined;
    if (pid !== undefined && Number(pid) !== process.pid) return undefined;
    return Math.max(100, Math.floor(usec / 1000 / 2));
  }

  ready(status: string): void {
    this.notify(`READY=1\nSTATUS=${status}`);
    const every = this.watchdogIntervalMs;
    if (every !== undefined) {
      this.timer = setInterval(() => this.notify('WATCHDOG=1'), every);
      this.timer.unref();
    }
  }

  stopping(): void {
    clearInterval(this.timer);
    this.notify('STOPPING=1');
  }

  private notify(message: string): void {
    if (!this.enabled) return;
    this.send(message).catch((err: unknown) => this.o.onError?.(err));
  }
}

function runSystemdNotify(message: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      'systemd-notify',
      [`--pid=${process.pid}`, ...message.split('\n')],
      { env: { PATH: env.PATH ?? '/usr/bin:/bin', NOTIFY_SOCKET: env.NOTIFY_SOCKET ?? '' }, timeout: 5000 },
      // ExecFileException is an Error whose type is spelled with Omit<>, which the rule does not see through.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      (err) => (err ? reject(err) : resolve()),
    );
  });
}
