import { statSync } from 'node:fs';
import { relative } from 'node:path';
import type { AgentConfig, CatalogDevice, ContainerSpec } from '../config/types.js';
import type { DevicesState } from '../state/types.js';

/**
 * One device node a container needs: the host node it stands for now, and the path it has
 * inside the container. `key` names the role (lidar, camera-depth, camera-video0, ...), which
 * survives a replug when every path and number may not.
 */
export interface DeviceMapping {
  device: string;
  key: string;
  host: string;
  container: string;
}

/** A mapping with the host node's numbers, read when the mapping is applied. */
export interface NumberedMapping extends DeviceMapping {
  major: number;
  minor: number;
  mode: number;
}

export interface ResolvedDevices {
  mappings: DeviceMapping[];
  /** Catalog devices the spec names that are not plugged in now. */
  missing: CatalogDevice[];
}

const CATALOG = new Set<string>(['lidar', 'camera', 'board']);

/**
 * Where each of a spec's devices is now and where it goes inside the container (pure: the
 * devices' state in, mappings out). The lidar and the board appear at their udev alias names;
 * the camera at its literal /dev/bus/usb/BBB/DDD paths (libusb opens those) and at its aliases,
 * with its video nodes; a literal /dev path passes as it is.
 */
export function resolveDeviceMappings(
  spec: Pick<ContainerSpec, 'devices'>,
  devices: DevicesState,
  catalog: AgentConfig['devices'],
): ResolvedDevices {
  const mappings: DeviceMapping[] = [];
  const missing: CatalogDevice[] = [];
  const inContainer = (hostPath: string) => `/dev/${relative(catalog.devRoot, hostPath)}`;
  for (const name of spec.devices) {
    if (!CATALOG.has(name)) {
      mappings.push({ device: name, key: name, host: name, container: name });
      continue;
    }
    const device = name as CatalogDevice;
    if (device === 'lidar') {
      const { lidar } = devices;
      if (!lidar.present || lidar.node === null) missing.push(device);
      else mappings.push({ device, key: 'lidar', host: lidar.node, container: `/dev/${catalog.lidar.alias}` });
    } else if (device === 'board') {
      const { board } = devices;
      if (!board.present || board.node === null) missing.push(device);
      else mappings.push({ device, key: 'board', host: board.node, container: `/dev/${catalog.board.alias}` });
    } else {
      const { camera } = devices;
      if (!camera.present) {
        missing.push(device);
        continue;
      }
      if (camera.depth) {
        mappings.push({
          device,
          key: 'camera-depth',
          host: camera.depth.node,
          container: inContainer(camera.depth.node),
        });
        mappings.push({
          device,
          key: 'camera-depth',
          host: camera.depth.node,
          container: `/dev/${catalog.camera.depthAlias}`,
        });
      }
      if (camera.rgb) {
        mappings.push({ device, key: 'camera-rgb', host: camera.rgb.node, container: inContainer(camera.rgb.node) });
        mappings.push({
          device,
          key: 'camera-rgb',
          host: camera.rgb.node,
          container: `/dev/${catalog.camera.rgbAlias}`,
        });
        camera.rgb.video.forEach((video, index) =>
          mappings.push({ device, key: `camera-video${index}`, host: video, container: inContainer(video) }),
        );
      }
    }
  }
  return { mappings, missing };
}

/**
 * Reads each host node's type and numbers (following a symlink: a tty may be an alias). A node
 * that vanished between the scan and now is dropped: the next device event brings it back.
 */
export function numberMappings(
  mappings: DeviceMapping[],
  stat: (path: string) => { rdev: number; mode: number; isCharacterDevice(): boolean } = statSync,
): NumberedMapping[] {
  const out: NumberedMapping[] = [];
  for (const m of mappings) {
    try {
      const s = stat(m.host);
      if (!s.isCharacterDevice()) continue;
      const { major, minor } = splitDev(s.rdev);
      out.push({ ...m, major, minor, mode: s.mode & 0o777 });
    } catch {
      // Gone since the scan.
    }
  }
  return out;
}

/** Linux's dev_t encoding (glibc gnu_dev_major / gnu_dev_minor), safe for JavaScript numbers. */
export function splitDev(rdev: number): { major: number; minor: number } {
  const high = Math.floor(rdev / 2 ** 32);
  const low = rdev >>> 0;
  return {
    major: ((low >>> 8) & 0xfff) | ((high & 0xfffff000) >>> 0),
    minor: (low & 0xff) | (((low >>> 12) & 0xfff00) >>> 0),
  };
}

/** Whether a mapping names a literal device path rather than a catalog device. */
export function isLiteralDevice(device: string): boolean {
  return !CATALOG.has(device);
}
