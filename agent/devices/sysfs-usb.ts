import { readdir, readFile, readlink, realpath } from 'node:fs/promises';
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
 */
export async function readUsbSnapshot(o: { sysfsRoot: string; devRoot: string; aliases: string[] }): Promise<UsbSnapshot> {
  const [devices, ttyOwners, videoOwners, aliases] = await Promise.all([
    readDevices(o.sysfsRoot),
    ownersOf(join(o.sysfsRoot, 'class', 'tty'), /^tty(USB|ACM)\d+$/),
    ownersOf(join(o.sysfsRoot, 'class', 'video4linux'), /^video\d+$/),
    readAliases(o.devRoot, o.aliases),
  ]);
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

export function pad3(n: number): string {
  return String(n).padStart(3, '0');
}

async function readDevices(sysfsRoot: string): Promise<Array<Omit<UsbDevice, 'node' | 'ttys' | 'video'> & { realPath: string }>> {
  const dir = join(sysfsRoot, 'bus', 'usb', 'devices');
  const names = await readdir(dir).catch(() => [] as string[]);
  const devices = await Promise.all(
    names
      // Interfaces carry a colon (1-1.2:1.0); usbN are the root hubs.
      .filter((name) => !name.includes(':') && !name.startsWith('usb'))
      .map(async (sysName) => {
        const path = join(dir, sysName);
        try {
          const [vid, pid, busnum, devnum, serial, product, realPath] = await Promise.all([
            readAttr(path, 'idVendor'),
            readAttr(path, 'idProduct'),
            readAttr(path, 'busnum'),
            readAttr(path, 'devnum'),
            readAttr(path, 'serial').catch(() => null),
            readAttr(path, 'product').catch(() => null),
            realpath(path),
          ]);
          return { sysName, vid: vid.toLowerCase(), pid: pid.toLowerCase(), busnum: Number(busnum), devnum: Number(devnum), serial, product, realPath };
        } catch {
          return undefined;
        }
      }),
  );
  return devices.filter((d): d is NonNullable<typeof d> => d !== undefined && Number.isInteger(d.busnum) && Number.isInteger(d.devnum)).sort((a, b) => a.sysName.localeCompare(b.sysName));
}

async function readAttr(dir: string, name: string): Promise<string> {
  return (await readFile(join(dir, name), 'utf8')).trim();
}

/**
 * Maps each USB device's real sysfs path to the class entries (ttyUSB0, video0) below it: the
 * entry's `device` link points into an interface of the device; walking up from there, the first
 * directory with an idVendor is the device.
 */
async function ownersOf(classDir: string, pattern: RegExp): Promise<Map<string, string[]>> {
  const owners = new Map<string, string[]>();
  const names = (await readdir(classDir).catch(() => [] as string[])).filter((n) => pattern.test(n)).sort(naturalOrder);
  await Promise.all(
    names.map(async (name) => {
      const owner = await usbDeviceAbove(join(classDir, name, 'device'));
      if (owner) owners.set(owner, [...(owners.get(owner) ?? []), name].sort(naturalOrder));
    }),
  );
  return owners;
}

async function usbDeviceAbove(link: string): Promise<string | undefined> {
  let dir: string;
  try {
    dir = await realpath(link);
  } catch {
    return undefined;
  }
  for (let depth = 0; depth < 6; depth += 1) {
    const hasVendor = await readFile(join(dir, 'idVendor')).then(() => true, () => false);
    if (hasVendor) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
  return undefined;
}

async function readAliases(devRoot: string, names: string[]): Promise<Record<string, string>> {
  const entries = await Promise.all(
    names.map(async (name) => {
      const link = join(devRoot, name);
      try {
        const target = await readlink(link);
        return [name, resolve(dirname(link), target)] as const;
      } catch {
        return undefined;
      }
    }),
  );
  return Object.fromEntries(entries.filter((e): e is readonly [string, string] => e !== undefined));
}

function naturalOrder(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
