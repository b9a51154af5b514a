import type { AgentConfig } from '../config/types.js';
import { Backoff } from '../core/backoff.js';
import { AgentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';
import type { DevicesState, LidarHealthState } from '../state/types.js';
import { DevWatcher, type DevicesWatch } from './dev-watcher.js';
import { absentDevices, diffPlacements, placeDevices, type DevicePlacement } from './device-resolver.js';
import { probeLidar, type ProbeOptions, type ProbeResult } from './lidar-probe.js';
import { portHolders } from './port-holders.js';
import { readUsbSnapshot, usbFingerprint } from './sysfs-usb.js';

export interface DevicesModuleOptions {
  config: AgentConfig['devices'];
  store: StateStore;
  bus: EventBus;
  logger: Logger;
  /** Injected so tests can count or slow probes; the real one speaks serial. */
  probe?: (o: ProbeOptions) => Promise<ProbeResult>;
  holders?: (path: string) => Promise<number[]>;
  /** Injected so tests can fake the watch; the real one is fs.watch on devices.devRoot. */
  watch?: (onChange: () => void) => DevicesWatch;
}

/** A freshly enumerated USB-serial bridge needs a moment before its tty answers. */
const SETTLE_MS = 150;

/**
 * Watches the lidar, the camera and the board: reads sysfs when device nodes come or go under
 * devices.devRoot (inotify, DevWatcher) and on a slow poll that catches what an event missed (a
 * replug shows as a new devnum or tty); without devices.watch, the poll alone. Raises
 * device.attached / detached / changed, keeps state.devices, and asks the lidar itself how it
 * is over serial: at start, on attach, on request and every checkInterval, but never while
 * another process holds its port.
 */
export class DevicesModule {
  readonly name = 'devices';
  private placement: DevicePlacement = absentDevices();
  private pollTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private probing: Promise<unknown> = Promise.resolve();
  private running = false;
  private polling = false;
  private pollAgain = false;
  private fingerprint = '';
  private watcher: DevicesWatch | undefined;

  constructor(private readonly options: DevicesModuleOptions) {}

  async start(): Promise<void> {
    this.running = true;
    await this.rescan();
    this.sayMissing();
    if (this.options.config.watch) {
      const onChange = () => void this.scan();
      this.watcher = this.options.watch?.(onChange) ?? this.defaultWatch(onChange);
      this.watcher.start();
    }
    this.schedulePoll();
    this.checkTimer = setInterval(
      () => void this.checkLidar(false).catch(() => undefined),
      this.options.config.lidar.checkInterval * 1000,
    );
    // The first scan found the lidar "attached" and scheduled a settled check: run that one now
    // instead, so that start-up probes the port once, not twice.
    if (this.placement.lidar.present) {
      clearTimeout(this.settleTimer);
      void this.checkLidar(false).catch(() => undefined);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.watcher?.stop();
    clearTimeout(this.pollTimer);
    clearInterval(this.checkTimer);
    clearTimeout(this.settleTimer);
    // A probe in flight closes its port within its own timeouts; do not leave it behind.
    await this.probing.catch(() => undefined);
  }

  /**
   * Once, at start: which devices are not there. Otherwise only the state says so, and an operator
   * watching the console of a robot with its lidar unplugged sees nothing at all. Attaching later
   * is logged as device.attached.
   */
  private sayMissing(): void {
    const missing = (['lidar', 'camera', 'board'] as const).filter((name) => !this.placement[name].present);
    if (missing.length === 0) return;
    this.options.logger.warn(`devices not found at start: ${missing.join(', ')}; they are picked up when plugged in`, {
      missing,
      sysfsRoot: this.options.config.sysfsRoot,
    });
  }

  /** Reads sysfs now, publishes what changed, and returns the devices' state. */
  async rescan(): Promise<DevicesState> {
    this.fingerprint = usbFingerprint(this.where());
    const snapshot = readUsbSnapshot(this.where());
    const c = this.options.config;
    const next = placeDevices(snapshot, c);
    const changes = diffPlacements(this.placement, next);
    this.placement = next;
    if (changes.length > 0) this.publish();
    for (const change of changes) {
      this.options.bus.emit(change.type, {
        device: change.device,
        ...(change.changes ? { changes: change.changes } : {}),
        ...(change.placement as object),
      });
      this.options.logger.info(change.type, {
        device: change.device,
        ...(change.changes ? { changes: change.changes } : {}),
      });
      if (change.device === 'lidar' && change.type !== 'device.detached') this.scheduleSettledCheck();
    }
    return this.options.store.get().devices;
  }

  /**
   * Probes the lidar now (one probe at a time). Explicit requests learn about a held port as a
   * `busy` error; scheduled ones just mark the health busy and keep its last value.
   */
  checkLidar(explicit: boolean): Promise<DevicesState['lidar']> {
    const run = this.probing.catch(() => undefined).then(() => this.probeOnce(explicit));
    this.probing = run.catch(() => undefined);
    return run;
  }

  private async probeOnce(explicit: boolean): Promise<DevicesState['lidar']> {
    const lidar = this.placement.lidar;
    const current = this.options.store.get().devices.lidar;
    if (!lidar.present || lidar.path === null) {
      if (explicit) throw new AgentError('not_present', 'no lidar is plugged in (no CP2102 with a tty found)');
      return current;
    }
    const holdersOf = this.options.holders ?? portHolders;
    // Checked here (no open at all while the driver has the port) and again by the probe after
    // its open and before each write (the driver may open the port in between).
    const holders = await holdersOf(lidar.path);
    if (holders.length > 0) return this.busy(lidar.path, holders, explicit);
    const c = this.options.config.lidar;
    const probe = this.options.probe ?? probeLidar;
    const result = await probe({ path: lidar.path, baudRate: c.baudRate, timeoutMs: c.timeout, holders: holdersOf });
    if (!result.ok && result.code === 'busy') return this.busy(lidar.path, result.holders, explicit);
    const checkedAt = new Date().toISOString();
    if (result.ok) {
      const health = { status: result.health.status, errorCode: result.health.errorCode, checkedAt, busy: false };
      this.setHealth(health, result.info, explicit);
    } else {
      // A mute or unplugged lidar is still the same lidar; a device that is not one has no identity.
      const info = result.code === 'not_a_lidar' ? null : current.info;
      const reason = `${result.code}: ${result.reason}`;
      this.setHealth({ status: 'unknown', errorCode: null, checkedAt, busy: false, reason }, info, explicit);
    }
    return this.options.store.get().devices.lidar;
  }

  /** Health keeps its last value, marked busy; an explicit request learns why. */
  private busy(path: string, holders: number[], explicit: boolean): DevicesState['lidar'] {
    const current = this.options.store.get().devices.lidar;
    this.setHealth({ ...current.health, busy: true }, current.info);
    if (explicit) {
      const who = holders.length > 0 ? `held open by process ${holders.join(', ')}` : 'locked by another process';
      throw new AgentError('busy', `${path} is ${who} (the ROS driver?); health keeps its last value`);
    }
    return this.options.store.get().devices.lidar;
  }

  /**
   * A scheduled check that found the same health keeps the previous checkedAt: bumping it alone
   * would republish the devices section every checkInterval on every robot for nothing (issue
   * 14). checkedAt thus says when this health was found; an operator's devices.check (explicit)
   * still gets, and publishes, a fresh one.
   */
  private setHealth(health: LidarHealthState, info: DevicesState['lidar']['info'], fresh = true): void {
    const previous = this.options.store.get().devices.lidar.health;
    const sameInfo = JSON.stringify(info) === JSON.stringify(this.options.store.get().devices.lidar.info);
    if (!fresh && sameInfo && sameHealth(previous, health)) return;
    this.options.store.update('devices', (d) => ({ ...d, lidar: { ...d.lidar, health, info } }));
    if (previous.status !== health.status || previous.errorCode !== health.errorCode) {
      this.options.bus.emit('device.health', {
        device: 'lidar',
        health,
        previous: { status: previous.status, errorCode: previous.errorCode },
      });
    }
  }

  private publish(): void {
    const p = this.placement;
    this.options.store.update('devices', (d) => ({
      lidar: p.lidar.present
        ? {
            ...p.lidar,
            health: d.lidar.present
              ? d.lidar.health
              : { status: 'unknown', errorCode: null, checkedAt: null, busy: false, reason: 'not checked yet' },
            info: d.lidar.present ? d.lidar.info : null,
          }
        : absentDevices().lidar,
      camera: p.camera,
      board: p.board,
    }));
  }

  private scheduleSettledCheck(): void {
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => void this.checkLidar(false).catch(() => undefined), SETTLE_MS);
  }

  private schedulePoll(): void {
    if (!this.running) return;
    this.pollTimer = setTimeout(() => {
      // Also re-opens a watch whose directory came back or appeared since (serial/by-id).
      this.watcher?.refresh();
      void this.scan().finally(() => this.schedulePoll());
    }, this.options.config.pollInterval);
  }

  private defaultWatch(onChange: () => void): DevicesWatch {
    const logger = this.options.logger;
    const backoff = new Backoff({ initialMs: 1000, maxMs: 60_000 });
    return new DevWatcher({ devRoot: this.options.config.devRoot, onChange, logger, backoff });
  }

  private where(): { sysfsRoot: string; devRoot: string; aliases: string[] } {
    const c = this.options.config;
    return {
      sysfsRoot: c.sysfsRoot,
      devRoot: c.devRoot,
      aliases: [c.lidar.alias, c.board.alias, c.camera.depthAlias, c.camera.rgbAlias],
    };
  }

  /**
   * From the poll and from the watcher. A scan asked for while one runs is run right after it,
   * not dropped: the event that asked may be the only one for that change.
   */
  private async scan(): Promise<void> {
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.polling = true;
    try {
      do {
        this.pollAgain = false;
        try {
          // The full read only when something moved: this keeps the poll cheap at idle.
          if (this.running && usbFingerprint(this.where()) !== this.fingerprint) await this.rescan();
        } catch (err) {
          this.options.logger.warn('device scan failed', { error: err as Error });
        }
      } while (this.pollAgain);
    } finally {
      this.polling = false;
    }
  }
}

function sameHealth(a: LidarHealthState, b: LidarHealthState): boolean {
  // A health never checked (checkedAt null) is never the same: the first answer is news.
  return (
    a.checkedAt !== null &&
    a.status === b.status &&
    a.errorCode === b.errorCode &&
    a.busy === b.busy &&
    a.reason === b.reason
  );
}
