import assert from 'node:assert/strict';
import { loadConfig } from '../../agent/config/load-config.js';
import type { AgentConfig } from '../../agent/config/types.js';
import { absentDevices, diffPlacements, placeDevices } from '../../agent/devices/device-resolver.js';
import type { UsbDevice, UsbSnapshot } from '../../agent/devices/sysfs-usb.js';
import { tempDir, writeYaml } from '../helpers/temp.js';

function catalog(devices: Record<string, unknown> = {}): AgentConfig['devices'] {
  const file = writeYaml(tempDir(), 'c.yaml', { devices: { devRoot: '/dev', ...devices } });
  return loadConfig({ file, env: {} }).config.devices;
}

const usb = (o: Partial<UsbDevice> & { sysName: string; vid: string; pid: string; devnum: number }): UsbDevice => ({
  busnum: 1,
  serial: null,
  product: null,
  node: `/dev/bus/usb/001/${String(o.devnum).padStart(3, '0')}`,
  ttys: [],
  video: [],
  ...o,
});

describe('device placement (pure)', () => {
  const lidarA = usb({ sysName: '1-1.2', vid: '10c4', pid: 'ea60', devnum: 5, ttys: ['/dev/ttyUSB0'] });
  const lidarB = usb({ sysName: '1-1.5', vid: '10c4', pid: 'ea60', devnum: 9, ttys: ['/dev/ttyUSB3'] });

  it('takes the alias as path only when it points at the device', () => {
    const snap: UsbSnapshot = { devices: [lidarA], aliases: { rplidar: '/dev/ttyUSB0' } };
    assert.equal(placeDevices(snap, catalog()).lidar.path, '/dev/rplidar');
    const stale: UsbSnapshot = { devices: [lidarA], aliases: { rplidar: '/dev/ttyUSB7' } };
    assert.equal(placeDevices(stale, catalog()).lidar.path, '/dev/ttyUSB0', 'a stale alias is not trusted');
  });

  it('with two CP2102 bridges, devices.lidar.path picks the lidar, by tty or by alias', () => {
    const snap: UsbSnapshot = { devices: [lidarA, lidarB], aliases: { rplidar: '/dev/ttyUSB3' } };
    assert.equal(placeDevices(snap, catalog()).lidar.node, '/dev/ttyUSB0', 'without a path: the first one');
    const byTty = placeDevices(snap, catalog({ lidar: { path: '/dev/ttyUSB3' } })).lidar;
    assert.deepEqual([byTty.present, byTty.node, byTty.usb?.devnum], [true, '/dev/ttyUSB3', 9]);
    const byAlias = placeDevices(snap, catalog({ lidar: { path: '/dev/rplidar' } })).lidar;
    assert.deepEqual([byAlias.path, byAlias.node, byAlias.usb?.devnum], ['/dev/rplidar', '/dev/ttyUSB3', 9]);
  });

  it('a CP2102 without a tty (driver not bound) is not the lidar', () => {
    const snap: UsbSnapshot = { devices: [{ ...lidarA, ttys: [] }], aliases: {} };
    assert.equal(placeDevices(snap, catalog()).lidar.present, false);
  });

  it('diff: attached, detached, and changed with the fields that moved', () => {
    const c = catalog();
    const before = placeDevices({ devices: [lidarA], aliases: {} }, c);
    const after = placeDevices(
      { devices: [{ ...lidarA, devnum: 12, node: '/dev/bus/usb/001/012', ttys: ['/dev/ttyUSB1'] }], aliases: {} },
      c,
    );
    assert.deepEqual(
      diffPlacements(absentDevices(), before).map((d) => `${d.type} ${d.device}`),
      ['device.attached lidar'],
    );
    const changed = diffPlacements(before, after);
    assert.equal(changed.length, 1);
    assert.deepEqual(changed[0]!.changes, {
      path: ['/dev/ttyUSB0', '/dev/ttyUSB1'],
      node: ['/dev/ttyUSB0', '/dev/ttyUSB1'],
      'usb.devnum': [5, 12],
    });
    const detached = diffPlacements(after, absentDevices());
    assert.deepEqual(
      detached.map((d) => d.type),
      ['device.detached'],
    );
    const where = detached[0]!.placement as { present: boolean; node: string };
    assert.equal(where.present, false, 'a detached device is not present');
    assert.equal(where.node, '/dev/ttyUSB1', 'where it was');
    assert.deepEqual(diffPlacements(after, after), []);
  });
});
