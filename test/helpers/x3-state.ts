import type { AgentState, ContainerState, ImageSummary } from '../../agent/state/types.js';

/** Layer digests of the ROS stand-in: 3.3.9 and 3.4.0 share all but the last, as the rig's do. */
export const ROS_BASE_LAYERS = Array.from({ length: 40 }, (_, i) => `sha256:${String(i).padStart(64, 'a')}`);

export function rosImage(version: string, id: string, extra: Partial<ImageSummary> = {}): ImageSummary {
  return {
    id,
    tags: [`yahboomtechnology/ros-foxy:${version}`],
    digests: [`yahboomtechnology/ros-foxy@sha256:${id.slice(7, 71).padEnd(64, '0')}`],
    size: 6_900_000_000,
    sharedSize: 6_800_000_000,
    uniqueSize: 100_000_000,
    created: '2026-11-01T10:00:00.000Z',
    layers: [...ROS_BASE_LAYERS, `sha256:${version.replace(/\./g, '').padStart(64, 'f')}`],
    containers: 1,
    ...extra,
  };
}

export const V339_ID = `sha256:${'3'.repeat(64)}`;
export const V340_ID = `sha256:${'4'.repeat(64)}`;

export function rosContainer(extra: Partial<ContainerState> = {}): ContainerState {
  return {
    name: 'ros',
    image: 'yahboomtechnology/ros-foxy:3.3.9',
    imageId: V339_ID,
    state: 'running',
    health: null,
    startedAt: '2026-11-23T05:01:50.000Z',
    restarts: 0,
    exitCode: null,
    devices: [
      { device: 'lidar', host: '/dev/ttyUSB0', container: '/dev/rplidar' },
      { device: 'board', host: '/dev/ttyUSB1', container: '/dev/myserial' },
    ],
    missingDevices: [],
    desired: { image: 'yahboomtechnology/ros-foxy:3.3.9', enabled: true, source: 'config' },
    inSync: true,
    ...extra,
  };
}

/** A ROSMASTER X3 with its devices attached and the ROS container running, as in docs/mqtt-api.md. */
export function x3State(): AgentState {
  const now = '2026-11-23T05:01:45.803Z';
  return {
    robot: 'rosmaster-07',
    ts: now,
    agent: {
      version: '0.1.0',
      startedAt: now,
      pid: 5571,
      modules: {
        'state-dir': { status: 'running', failures: 0 },
        mqtt: { status: 'running', failures: 0 },
        docker: { status: 'running', failures: 0 },
      },
      mqtt: {
        connected: true,
        protocolVersion: 5,
        broker: 'external',
        eventsDropped: 0,
        eventsBuffered: 0,
        reconnects: 0,
      },
    },
    host: {
      hostname: 'rosmaster-07',
      platform: 'linux',
      arch: 'arm64',
      cpus: 4,
      metrics: {
        sampledAt: now,
        cpuLoad: 7.5,
        loadAverage: [0.31, 0.4, 0.38],
        memory: { total: 4143476736, used: 1620000000, available: 2400000000 },
        disks: [
          {
            role: 'state',
            path: '/var/lib/robot-agent',
            total: 62725623808,
            free: 21474836480,
            available: 18253611008,
          },
          { role: 'docker', path: '/var/lib/docker', total: 62725623808, free: 21474836480, available: 18253611008 },
        ],
        cpuTemperature: 41.5,
        uptime: 86400,
      },
    },
    docker: {
      available: true,
      version: '20.10.24',
      apiVersion: '1.41',
      os: 'linux',
      arch: 'arm64',
      rootDir: '/var/lib/docker',
      since: now,
    },
    devices: {
      lidar: {
        present: true,
        path: '/dev/rplidar',
        node: '/dev/ttyUSB0',
        usb: { vid: '10c4', pid: 'ea60', busnum: 1, devnum: 5, serial: '0001' },
        health: { status: 'good', errorCode: 0, checkedAt: now, busy: false },
        info: {
          model: 24,
          modelName: 'A1M8',
          firmware: '1.29',
          hardware: 7,
          serial: '0123456789ABCDEF0011223344556677',
        },
      },
      camera: {
        present: true,
        depth: { busnum: 1, devnum: 7, node: '/dev/bus/usb/001/007' },
        rgb: { busnum: 1, devnum: 8, node: '/dev/bus/usb/001/008', video: ['/dev/video0', '/dev/video1'] },
      },
      board: {
        present: true,
        path: '/dev/myserial',
        node: '/dev/ttyUSB1',
        usb: { vid: '1a86', pid: '7523', busnum: 1, devnum: 6, serial: null },
      },
    },
    images: [rosImage('3.3.9', V339_ID)],
    containers: [rosContainer()],
    desired: { appliedAt: null },
    update: { status: 'idle' },
    snapshots: [],
  };
}
