import { join } from 'node:path';
import type { AgentConfig } from '../config/types.js';
import type { DevicesState, UsbIdentity } from '../state/types.js';
import type { UsbDevice, UsbSnapshot } from './sysfs-usb.js';

export type DeviceName = 'lidar' | 'camera' | 'board';

/** Where each device is, without health: what sysfs and /dev alone can tell. */
export interface DevicePlacement {
  lidar: { present: boolean; path: string | null; node: string | null; usb: UsbIdentity | null };
  camera: DevicesState['camera'];
  board: DevicesState['board'];
}

/**
 * Decides which USB device is the lidar, the camera and the board (pure: a snapshot and the
 * catalog in, placements out). 10c4:ea60 is any CP2102, so a match here only says "probably the
 * lidar": the serial probe confirms it.
 */
export function placeDevices(snapshot: UsbSnapshot, catalog: AgentConfig['devices']): DevicePlacement {
  const aliasPath = (alias: string) => join(catalog.devRoot, alias);
  const aliasFor = (alias: string, target: string | undefined) =>
    target !== undefined && snapshot.aliases[alias] === target ? aliasPath(alias) : null;
  const matching = (vid: string, pid: string) => snapshot.devices.filter((d) => d.vid === vid && d.pid === pid);

  const lidarDevice =
    catalog.lidar.path !== undefined
      ? snapshot.devices.find((d) =>
          d.ttys.some(
            (t) => t === catalog.lidar.path || t === snapshot.aliases[aliasName(catalog.lidar.path!, catalog.devRoot)],
          ),
        )
      : matching(catalog.lidar.vid, catalog.lidar.pid).find((d) => d.ttys.length > 0);
  const lidarNode = lidarDevice?.ttys[0] ?? null;
  const lidar: DevicePlacement['lidar'] =
    catalog.lidar.path !== undefined
      ? { present: lidarDevice !== undefined, path: catalog.lidar.path, node: lidarNode, usb: identity(lidarDevice) }
      : {
          present: lidarDevice !== undefined,
          path: lidarNode === null ? null : (aliasFor(catalog.lidar.alias, lidarNode) ?? lidarNode),
          node: lidarNode,
          usb: identity(lidarDevice),
        };

  const depth = matching(catalog.camera.vid, catalog.camera.depthPid)[0];
  const rgb = matching(catalog.camera.vid, catalog.camera.rgbPid)[0];
  const camera: DevicePlacement['camera'] = {
    present: depth !== undefined || rgb !== undefined,
    depth: depth ? { busnum: depth.busnum, devnum: depth.devnum, node: depth.node } : null,
    rgb: rgb ? { busnum: rgb.busnum, devnum: rgb.devnum, node: rgb.node, video: rgb.video } : null,
  };

  const boardDevice = matching(catalog.board.vid, catalog.board.pid).find((d) => d.ttys.length > 0);
  const boardNode = boardDevice?.ttys[0] ?? null;
  const board: DevicePlacement['board'] = {
    present: boardDevice !== undefined,
    path: boardNode === null ? null : (aliasFor(catalog.board.alias, boardNode) ?? boardNode),
    node: boardNode,
    usb: identity(boardDevice),
  };
  return { lidar, camera, board };
}

function aliasName(path: string, devRoot: string): string {
  return path.startsWith(devRoot + '/') ? path.slice(devRoot.length + 1) : path;
}

function identity(device: UsbDevice | undefined): UsbIdentity | null {
  return device
    ? { vid: device.vid, pid: device.pid, busnum: device.busnum, devnum: device.devnum, serial: device.serial }
    : null;
}

export interface DeviceChange {
  type: 'device.attached' | 'device.detached' | 'device.changed';
  device: DeviceName;
  /** For device.changed: each field that moved, [before, after]. */
  changes?: Record<string, [unknown, unknown]>;
  placement: unknown;
}

/** What happened between two placements, as events to raise (pure). */
export function diffPlacements(before: DevicePlacement, after: DevicePlacement): DeviceChange[] {
  const out: DeviceChange[] = [];
  for (const device of ['lidar', 'camera', 'board'] as const) {
    const a = before[device];
    const b = after[device];
    if (!a.present && b.present) out.push({ type: 'device.attached', device, placement: b });
    // Where it was, but no longer there: the event must never say `present: true`.
    else if (a.present && !b.present) {
      out.push({ type: 'device.detached', device, placement: { ...a, present: false } });
    } else if (a.present && b.present) {
      const changes = changedFields(flatten(a), flatten(b));
      if (Object.keys(changes).length > 0) out.push({ type: 'device.changed', device, changes, placement: b });
    }
  }
  return out;
}

function flatten(value: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out[prefix] = Array.isArray(value) ? value.join(',') : value;
  }
  return out;
}

function changedFields(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, [unknown, unknown]> {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: Record<string, [unknown, unknown]> = {};
  for (const key of keys) if (a[key] !== b[key]) out[key] = [a[key] ?? null, b[key] ?? null];
  return out;
}

export function absentDevices(): DevicesState {
  return {
    lidar: {
      present: false,
      path: null,
      node: null,
      usb: null,
      health: { status: 'unknown', errorCode: null, checkedAt: null, busy: false, reason: 'lidar not present' },
      info: null,
    },
    camera: { present: false, depth: null, rgb: null },
    board: { present: false, path: null, node: null, usb: null },
  };
}
