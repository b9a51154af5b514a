import { createHash } from 'node:crypto';
import type { ContainerSpec } from '../config/types.js';
import type { ContainerCreateBody } from '../docker/engine.js';
import { isLiteralDevice, type DeviceMapping } from './device-mappings.js';

/** Labels on every container the agent made: how it recognises its own and what it made them from. */
export const LABELS = {
  managed: 'io.robot-agent.managed',
  name: 'io.robot-agent.name',
  image: 'io.robot-agent.image',
  spec: 'io.robot-agent.spec',
  devices: 'io.robot-agent.devices',
} as const;

/**
 * A short fingerprint of everything in a spec but its image and enabled flag (which the fleet's
 * desired state may change without the container being "different"): a changed mount, env or
 * device list means the container must be recreated.
 */
export function specHash(spec: ContainerSpec): string {
  const { image: _image, enabled: _enabled, ...rest } = spec;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex').slice(0, 16);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** What the devices label records: each node's role and paths when the container was made. */
export function devicesLabel(mappings: DeviceMapping[]): string {
  return JSON.stringify(mappings.filter((m) => !isLiteralDevice(m.device)).map((m) => [m.key, m.host, m.container]));
}

export function parseDevicesLabel(label: string | undefined): DeviceMapping[] {
  if (!label) return [];
  try {
    const rows = JSON.parse(label) as Array<[string, string, string]>;
    return rows.map(([key, host, container]) => ({ device: key.split('-')[0]!, key, host, container }));
  } catch {
    return [];
  }
}

export interface CreateInput {
  name: string;
  spec: ContainerSpec;
  /** The reference in the desired state (label), and what to create from (a commit after a recreate). */
  image: string;
  runImage: string;
  mappings: DeviceMapping[];
  /**
   * The host node Docker reads a catalog device from at every start: a node the agent keeps at
   * a fixed path with the device's current numbers, so a restart after a replug (or a reboot,
   * before the agent runs) starts with the right device instead of failing on a stale path.
   */
  stableNode: (key: string) => string;
}

/** The Engine API's create body for a spec (pure). Nothing here comes from MQTT but the image. */
export function createOptions(input: CreateInput): ContainerCreateBody {
  const { spec } = input;
  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const port of spec.ports) {
    const parts = port.split(':');
    const [containerPort, proto = 'tcp'] = parts.pop()!.split('/');
    const hostPort = parts.pop()!;
    const hostIp = parts.pop() ?? '';
    const key = `${containerPort}/${proto}`;
    exposed[key] = {};
    (bindings[key] ??= []).push({ HostIp: hostIp, HostPort: hostPort });
  }
  const devices = input.mappings.map((m) => ({
    PathOnHost: isLiteralDevice(m.device) ? m.host : input.stableNode(m.key),
    PathInContainer: m.container,
    CgroupPermissions: 'rwm',
  }));
  return {
    name: input.name,
    Image: input.runImage,
    ...(spec.command ? { Cmd: spec.command } : {}),
    ...(spec.workingDir ? { WorkingDir: spec.workingDir } : {}),
    ...(spec.user ? { User: spec.user } : {}),
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    Tty: spec.tty,
    OpenStdin: spec.tty,
    StopTimeout: spec.stopTimeout,
    ExposedPorts: exposed,
    Labels: {
      [LABELS.managed]: 'true',
      [LABELS.name]: input.name,
      [LABELS.image]: input.image,
      [LABELS.spec]: specHash(spec),
      [LABELS.devices]: devicesLabel(input.mappings),
    },
    HostConfig: {
      NetworkMode: spec.network,
      PortBindings: bindings,
      Binds: spec.mounts,
      Devices: devices,
      // Any minor of these majors: a replugged device's new node works without a restart.
      DeviceCgroupRules: spec.replug === 'live' ? spec.deviceMajors.map((major) => `c ${major}:* rmw`) : [],
      RestartPolicy: { Name: spec.restart === 'no' ? '' : spec.restart, MaximumRetryCount: 0 },
      Privileged: spec.privileged,
      CapAdd: spec.capAdd,
      ...(spec.shmSize ? { ShmSize: spec.shmSize } : {}),
    },
  };
}
