import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '../../agent/config/load-config.js';
import { placeDevices } from '../../agent/devices/device-resolver.js';
import { readUsbSnapshot, usbFingerprint } from '../../agent/devices/sysfs-usb.js';
import { CONTROLLERS, FakeUsbBus, X3, type FakeDevice } from '../helpers/fake-sysfs.js';
import { tempDir, writeYaml } from '../helpers/temp.js';

/**
 * The robots' controllers put USB devices elsewhere in sysfs than a PC does (issue 17): below a
 * platform device instead of a PCI one, behind an on-board hub (Jetson Nano), or on two host
 * controllers at once (Raspberry Pi 5). The X3's devices, plugged the way each board has them,
 * must be read and placed the same.
 */
const LAYOUTS: Record<string, { controller: string; devices: FakeDevice[]; sysPaths: Record<string, string> }> = {
  'PC (PCI xHCI)': {
    controller: CONTROLLERS.pc,
    devices: [
      X3.lidar({ controller: CONTROLLERS.pc }),
      X3.board({ controller: CONTROLLERS.pc }),
      X3.cameraDepth({ controller: CONTROLLERS.pc }),
      X3.cameraRgb({ controller: CONTROLLERS.pc }),
    ],
    sysPaths: { '1-1.2': 'devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.2' },
  },
  'Jetson Nano (70090000.xusb, on-board hub 1-2)': {
    controller: CONTROLLERS.jetsonNano,
    devices: [
      X3.lidar({ controller: CONTROLLERS.jetsonNano, port: '1-2.1', devnum: 3 }),
      X3.board({ controller: CONTROLLERS.jetsonNano, port: '1-2.2', devnum: 4 }),
      // The camera on a second hub in a hub port: three levels deep.
      X3.cameraDepth({ controller: CONTROLLERS.jetsonNano, port: '1-2.3.1', devnum: 6 }),
      X3.cameraRgb({ controller: CONTROLLERS.jetsonNano, port: '1-2.3.2', devnum: 7 }),
    ],
    sysPaths: {
      '1-2.1': 'devices/platform/70090000.xusb/usb1/1-2/1-2.1',
      '1-2.3.1': 'devices/platform/70090000.xusb/usb1/1-2/1-2.3/1-2.3.1',
    },
  },
  'Raspberry Pi 5 (RP1 xhci-hcd.0 and xhci-hcd.1)': {
    controller: CONTROLLERS.pi5,
    devices: [
      X3.lidar({ controller: CONTROLLERS.pi5, port: '1-1', devnum: 2 }),
      X3.board({ controller: CONTROLLERS.pi5Second, port: '3-1', busnum: 3, devnum: 2 }),
      X3.cameraDepth({ controller: CONTROLLERS.pi5Second, port: '3-2', busnum: 3, devnum: 3 }),
      X3.cameraRgb({ controller: CONTROLLERS.pi5, port: '1-2', devnum: 3 }),
    ],
    sysPaths: {
      '1-1': 'devices/platform/axi/1000120000.pcie/1f00200000.usb/xhci-hcd.0/usb1/1-1',
      '3-1': 'devices/platform/axi/1000120000.pcie/1f00300000.usb/xhci-hcd.1/usb3/3-1',
    },
  },
};

describe('devices: the sysfs layouts of a PC, a Jetson Nano and a Raspberry Pi 5', () => {
  for (const [board, layout] of Object.entries(LAYOUTS)) {
    it(`${board}: every X3 device read with its tty, video nodes, USB node and alias, and placed`, () => {
      const bus = new FakeUsbBus(tempDir('rfa-layout-'));
      for (const d of layout.devices) bus.plug(d);
      for (const [port, path] of Object.entries(layout.sysPaths)) {
        assert.equal(
          bus.devicePath(layout.devices.find((d) => d.port === port)!),
          join(bus.sysfsRoot, path),
          `${port} where the board has it`,
        );
      }
      const where = {
        sysfsRoot: bus.sysfsRoot,
        devRoot: bus.devRoot,
        aliases: ['rplidar', 'myserial', 'astradepth', 'astrauvc'],
      };
      const snapshot = readUsbSnapshot(where);
      const expected = layout.devices.map((d) => ({
        sysName: d.port,
        vid: d.vid,
        pid: d.pid,
        busnum: d.busnum ?? 1,
        devnum: d.devnum,
        serial: d.serial ?? null,
        product: d.product ?? null,
        node: bus.usbNode(d),
        ttys: d.tty ? [join(bus.devRoot, d.tty)] : [],
        video: (d.video ?? []).map((v) => join(bus.devRoot, v)),
      }));
      assert.deepEqual(
        snapshot.devices,
        expected.sort((a, b) => a.sysName.localeCompare(b.sysName)),
      );
      assert.deepEqual(snapshot.aliases, {
        rplidar: join(bus.devRoot, 'ttyUSB0'),
        myserial: join(bus.devRoot, 'ttyUSB1'),
        astradepth: bus.usbNode(layout.devices[2]!),
        astrauvc: bus.usbNode(layout.devices[3]!),
      });

      const catalog = loadConfig({
        file: writeYaml(tempDir(), 'c.yaml', { devices: { devRoot: bus.devRoot, sysfsRoot: bus.sysfsRoot } }),
        env: {},
      }).config.devices;
      const placed = placeDevices(snapshot, catalog);
      assert.equal(placed.lidar.path, join(bus.devRoot, 'rplidar'));
      assert.equal(placed.board.path, join(bus.devRoot, 'myserial'));
      assert.equal(placed.camera.depth?.node, bus.usbNode(layout.devices[2]!));
      assert.deepEqual(placed.camera.rgb?.video, [join(bus.devRoot, 'video0'), join(bus.devRoot, 'video1')]);

      // A replug (new device number, new tty) changes the fingerprint the watcher polls.
      const before = usbFingerprint(where);
      const lidar = layout.devices[0]!;
      bus.replug(lidar.port, { devnum: lidar.devnum + 20, tty: 'ttyUSB2' });
      assert.notEqual(usbFingerprint(where), before);
      const after = readUsbSnapshot(where).devices.find((d) => d.sysName === lidar.port)!;
      assert.deepEqual(after.ttys, [join(bus.devRoot, 'ttyUSB2')]);
      assert.equal(after.devnum, lidar.devnum + 20);
    });
  }
});
