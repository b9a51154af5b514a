import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** One USB device as sysfs shows it, with what hangs off it (ttys, video nodes). */
export interface UsbDevice {
  /** The sysfs name, e.g. 1-1.2 (bus-port.port). */
  sysName: string;
  vid: string;
  pid: string;
  busnum: number;
  devnum: number;
  serial: string | null;
  product: string | null;
  /** <devRoot>/bus/usb/BBB/DDD: what libusb opens. */
  node: string;
  /** tty nodes of a USB-serial bridge: <devRoot>/ttyUSB0. */
  ttys: string[];
  /** V4L2 nodes of a camera: <devRoot>/video0. */
  video: string[];
}

export interface UsbSnapshot {
  devices: UsbDevice[];
  /** udev aliases that exist under devRoot, by alias name, to the node they point at. */
  aliases: Record<string, string>;
}

/**
 * Reads the USB devices from sysfs the way udev would see them, without udevadm or libudev
 * (neither is on every robot, nor on this project's test machines): vendor and product ids, bus
 * and device numbers, the ttys and video nodes behind each device, and which aliases exist.
 * A device that vanishes half-way through a read is simply left out of this snapshot.
 *
 * Synchronous on purpose: sysfs lives in memory and answers in microseconds, while each async
 * fs call costs a thread-pool round trip; polled several times a second, that difference is
 * most of the watcher's idle CPU.
 */
export function readUsbSnapshot(o: { sysfsRoot: string; devRoot: string; aliases: string[] }): UsbSnapshot {
  const devices = readDevices(o.sysfsRoot);
  const ttyOwners = ownersOf(join(o.sysfsRoot, 'class', 'tty'), TTY);
  const videoOwners = ownersOf(join(o.sysfsRoot, 'class', 'video4linux'), VIDEO);
  const aliases = readAliases(o.devRoot, o.aliases);
  return {
    devices: devices.map(({ realPath, ...d }) => ({
      ...d,
      node: join(o.devRoot, 'bus', 'usb', pad3(d.busnum), pad3(d.devnum)),
      ttys: (ttyOwners.get(realPath) ?? []).map((name) => join(o.devRoot, name)),
      video: (videoOwners.get(realPath) ?? []).map((name) => join(o.devRoot, name)),
    })),
    aliases,
  };
}

const TTY = /^tty(USB|ACM)\d+$/;
const VIDEO = /^video\d+$/;

/**
 * What changes whenever the snapshot would: which devices exist and their device numbers (a
 * replug renumbers), which ttys and video nodes exist, where the aliases point. A tenth of the
 * syscalls of a snapshot, so the watcher can poll often and read everything only on a change.
 */
export function usbFingerprint(o: { sysfsRoot: string; devRoot: string; aliases: string[] }): string {
  const dir = join(o.sysfsRoot, 'bus', 'usb', 'devices');
  const parts = list(dir)
    .filter((name) => !name.includes(':') && !name.startsWith('usb'))
    .sort()
    .map((name) => {
      try {
        return `${name}=${readAttr(join(dir, name), 'devnum')}`;
      } catch {
        return name;
      }
    });
  parts.push(
    '|',
    ...list(join(o.sysfsRoot, 'class', 'tty'))
      .filter((n) => TTY.test(n))
      .sort(),
  );
  parts.push(
    '|',
    ...list(join(o.sysfsRoot, 'class', 'video4linux'))
      .filter((n) => VIDEO.test(n))
      .sort(),
  );
  for (const alias of o.aliases) {
    try {
      parts.push(`${alias}>${readlinkSync(join(o.devRoot, alias))}`);
    } catch {
      parts.push(`${alias}>`);
    }
  }
  return parts.join(',');
}

export function pad3(n: number): string {
  return String(n).padStart(3, '0');
}

function readDevices(sysfsRoot: string): Array<Omit<UsbDevice, 'node' | 'ttys' | 'video'> & { realPath: string }> {
  const dir = join(sysfsRoot, 'bus', 'usb', 'devices');
  const devices = list(dir)
    // Interfaces carry a colon (1-1.2:1.0); usbN are the root hubs.
    .filter((name) => !name.includes(':') && !name.startsWith('usb'))
    .map((sysName) => {
      const path = join(dir, sysName);
      try {
        const optional = (name: string) => {
          try {
            return readAttr(path, name);
          } catch {
            return null;
          }
        };
        return {
          sysName,
          vid: readAttr(path, 'idVendor').toLowerCase(),
          pid: readAttr(path, 'idProduct').toLowerCase(),
          busnum: Number(readAttr(path, 'busnum')),
          devnum: Number(readAttr(path, 'devnum')),
          serial: optional('serial'),
          product: optional('product'),
          realPath: realpathSync(path),
        };
      } catch {
        return undefined;
      }
    });
  return devices
    .filter(
      (d): d is NonNullable<typeof d> => d !== undefined && Number.isInteger(d.busnum) && Number.isInteger(d.devnum),
    )
    .sort((a, b) => a.sysName.localeCompare(b.sysName));
}

function readAttr(dir: string, name: string): string {
  return readFileSync(join(dir, name), 'utf8').trim();
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Maps each USB device's real sysfs path to the class entries (ttyUSB0, video0) below it: the
 * entry's `device` link points into an interface of the device; walking up from there, the first
 * directory with an idVendor is the device.
 */
function ownersOf(classDir: string, pattern: RegExp): Map<string, string[]> {
  const owners = new Map<string, string[]>();
  for (const name of list(classDir)
    .filter((n) => pattern.test(n))
    .sort(naturalOrder)) {
    const owner = usbDeviceAbove(join(classDir, name, 'device'));
    if (owner) owners.set(owner, [...(owners.get(owner) ?? []), name]);
  }
  return owners;
}

function usbDeviceAbove(link: string): string | undefined {
  let dir: string;
  try {
    dir = realpathSync(link);
  } catch {
    return undefined;
  }
  for (let depth = 0; depth < 6; depth += 1) {
    if (list(dir).includes('idVendor')) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
  return undefined;
}

function readAliases(devRoot: string, names: string[]): Record<string, string> {
  const entries = names.map((name) => {
    const link = join(devRoot, name);
    try {
      return [name, resolve(dirname(link), readlinkSync(link))] as const;
    } catch {
      return undefined;
    }
  });
  return Object.fromEntries(entries.filter((e): e is readonly [string, string] => e !== undefined));
}

function naturalOrder(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
