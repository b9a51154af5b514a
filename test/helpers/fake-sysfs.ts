import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface FakeDevice {
  /** sysfs name: bus-port[.port], e.g. 1-1.2. */
  port: string;
  vid: string;
  pid: string;
  busnum?: number;
  devnum: number;
  serial?: string;
  product?: string;
  /** A USB-serial bridge's tty (ttyUSB0); `ttyTarget` makes /dev/ttyUSB0 a link to a pty. */
  tty?: string;
  ttyTarget?: string;
  video?: string[];
  /** udev symlink name under dev, pointing at the tty or at the USB node. */
  alias?: string;
  /**
   * The USB host controller's path under /sys/devices (CONTROLLERS). Given, the device sits where
   * the kernel puts it on that board: below the controller and below each hub on its way
   * (usb1/1-2/1-2.3); not given, directly under devices/usbN (the layout the older tests use).
   */
  controller?: string;
}

/**
 * Where USB host controllers sit in sysfs on the boards the agent runs on (from the kernels' device
 * trees and users' `ls -l /sys/bus/usb/devices` listings).
 */
export const CONTROLLERS = {
  /** A PC's Intel xHCI (the development machines). */
  pc: 'pci0000:00/0000:00:14.0',
  /** Jetson Nano (Tegra X1): the xusb controller, an on-board hub at 1-2 in front of the four ports. */
  jetsonNano: 'platform/70090000.xusb',
  /** Raspberry Pi 5: two xHCI controllers in the RP1 chip behind PCIe; its USB 2 ports are usb1 and usb3. */
  pi5: 'platform/axi/1000120000.pcie/1f00200000.usb/xhci-hcd.0',
  pi5Second: 'platform/axi/1000120000.pcie/1f00300000.usb/xhci-hcd.1',
} as const;

const pad3 = (n: number) => String(n).padStart(3, '0');

/**
 * A USB bus the way the agent reads it: a temp sysfs tree (bus/usb/devices, class/tty,
 * class/video4linux, devices/...) and a temp /dev with real character nodes made by mknod
 * (189 USB, 188 ttyUSB, 81 video: what Docker's --device accepts). Plug, unplug and replug
 * move both as the kernel and udev would.
 */
export class FakeUsbBus {
  readonly sysfsRoot: string;
  readonly devRoot: string;
  private readonly plugged = new Map<string, FakeDevice>();

  constructor(readonly root: string) {
    this.sysfsRoot = join(root, 'sys');
    this.devRoot = join(root, 'dev');
    for (const d of ['bus/usb/devices', 'class/tty', 'class/video4linux', 'devices'])
      mkdirSync(join(this.sysfsRoot, d), { recursive: true });
    mkdirSync(join(this.devRoot, 'bus', 'usb'), { recursive: true });
  }

  devicePath(d: FakeDevice): string {
    if (d.controller === undefined) return join(this.sysfsRoot, 'devices', `usb${d.busnum ?? 1}`, d.port);
    // 1-2.3 is port 3 of the hub at 1-2: its directory is inside the hub's.
    const [bus, chain = ''] = d.port.split('-');
    const hops = chain.split('.').map((_, i, all) => `${bus}-${all.slice(0, i + 1).join('.')}`);
    return join(this.sysfsRoot, 'devices', d.controller, `usb${d.busnum ?? 1}`, ...hops);
  }

  usbNode(d: FakeDevice): string {
    return join(this.devRoot, 'bus', 'usb', pad3(d.busnum ?? 1), pad3(d.devnum));
  }

  plug(d: FakeDevice): void {
    const bus = d.busnum ?? 1;
    const dir = this.devicePath(d);
    const iface = join(dir, `${d.port}:1.0`);
    mkdirSync(iface, { recursive: true });
    const attrs: Record<string, string> = {
      idVendor: d.vid,
      idProduct: d.pid,
      busnum: String(bus),
      devnum: String(d.devnum),
      devpath: d.port.split('-')[1] ?? '1',
      speed: '12',
    };
    if (d.serial) attrs.serial = d.serial;
    if (d.product) attrs.product = d.product;
    for (const [k, v] of Object.entries(attrs)) writeFileSync(join(dir, k), v + '\n');
    writeFileSync(join(iface, 'bInterfaceClass'), 'ff\n');
    symlinkSync(
      relative(join(this.sysfsRoot, 'bus/usb/devices'), dir),
      join(this.sysfsRoot, 'bus/usb/devices', d.port),
    );
    symlinkSync(
      relative(join(this.sysfsRoot, 'bus/usb/devices'), iface),
      join(this.sysfsRoot, 'bus/usb/devices', `${d.port}:1.0`),
    );
    mkdirSync(join(this.devRoot, 'bus', 'usb', pad3(bus)), { recursive: true });
    mknod(this.usbNode(d), 189, (bus - 1) * 128 + d.devnum - 1);
    if (d.tty) {
      const ttyDir = join(iface, d.tty);
      mkdirSync(ttyDir, { recursive: true });
      const classDir = join(this.sysfsRoot, 'class/tty', d.tty);
      mkdirSync(classDir, { recursive: true });
      symlinkSync(relative(classDir, ttyDir), join(classDir, 'device'));
      const devTty = join(this.devRoot, d.tty);
      if (d.ttyTarget) symlinkSync(d.ttyTarget, devTty);
      else mknod(devTty, 188, Number(d.tty.replace(/\D/g, '')));
    }
    for (const video of d.video ?? []) {
      const classDir = join(this.sysfsRoot, 'class/video4linux', video);
      mkdirSync(classDir, { recursive: true });
      symlinkSync(relative(classDir, iface), join(classDir, 'device'));
      mknod(join(this.devRoot, video), 81, Number(video.replace(/\D/g, '')));
    }
    if (d.alias) symlinkSync(d.tty ? d.tty : relative(this.devRoot, this.usbNode(d)), join(this.devRoot, d.alias));
    this.plugged.set(d.port, d);
  }

  unplug(port: string): FakeDevice {
    const d = this.plugged.get(port);
    if (!d) throw new Error(`nothing plugged at ${port}`);
    const rm = (p: string) => rmSync(p, { recursive: true, force: true });
    rm(join(this.sysfsRoot, 'bus/usb/devices', d.port));
    rm(join(this.sysfsRoot, 'bus/usb/devices', `${d.port}:1.0`));
    rm(this.devicePath(d));
    rm(this.usbNode(d));
    if (d.tty) {
      rm(join(this.sysfsRoot, 'class/tty', d.tty));
      rm(join(this.devRoot, d.tty));
    }
    for (const video of d.video ?? []) {
      rm(join(this.sysfsRoot, 'class/video4linux', video));
      rm(join(this.devRoot, video));
    }
    if (d.alias) rm(join(this.devRoot, d.alias));
    this.plugged.delete(port);
    return d;
  }

  /** Out and back in, as the kernel re-enumerates: a new devnum, maybe a new tty. */
  replug(port: string, changes: Partial<FakeDevice>): FakeDevice {
    const before = this.unplug(port);
    const after = { ...before, ...changes };
    this.plug(after);
    return after;
  }
}

function mknod(path: string, major: number, minor: number): void {
  execFileSync('mknod', [path, 'c', String(major), String(minor)]);
}

/** The ROSMASTER X3's devices as a robot has them plugged. */
export const X3 = {
  lidar: (o: Partial<FakeDevice> = {}): FakeDevice => ({
    port: '1-1.2',
    vid: '10c4',
    pid: 'ea60',
    devnum: 5,
    serial: '0001',
    product: 'CP2102 USB to UART Bridge Controller',
    tty: 'ttyUSB0',
    alias: 'rplidar',
    ...o,
  }),
  board: (o: Partial<FakeDevice> = {}): FakeDevice => ({
    port: '1-1.3',
    vid: '1a86',
    pid: '7523',
    devnum: 6,
    product: 'USB Serial',
    tty: 'ttyUSB1',
    alias: 'myserial',
    ...o,
  }),
  cameraDepth: (o: Partial<FakeDevice> = {}): FakeDevice => ({
    port: '1-1.4',
    vid: '2bc5',
    pid: '060f',
    devnum: 7,
    serial: 'AY3A1230041',
    product: 'ORBBEC Depth Sensor',
    alias: 'astradepth',
    ...o,
  }),
  cameraRgb: (o: Partial<FakeDevice> = {}): FakeDevice => ({
    port: '1-1.1',
    vid: '2bc5',
    pid: '050f',
    devnum: 8,
    product: 'USB 2.0 Camera',
    video: ['video0', 'video1'],
    alias: 'astrauvc',
    ...o,
  }),
};
