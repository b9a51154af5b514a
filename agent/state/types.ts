/**
 * The whole observed state of a robot, as published retained on <b>/state. Later features add
 * their own sections (devices, containers, images, update, snapshots) here and nowhere else:
 * one store, one shape, one schema (docs/schemas/state.json).
 */
export interface ModuleStatus {
  status: 'starting' | 'running' | 'failed' | 'stopped';
  error?: { code: string; message: string };
  /** Consecutive failed starts; reset when a start succeeds. */
  failures: number;
  /** When the next start is tried (ISO 8601), while failed. */
  retryAt?: string;
}

export interface HostMetrics {
  sampledAt: string;
  /** Average load over all cores in percent since the previous sample. */
  cpuLoad: number | null;
  loadAverage: [number, number, number];
  memory: { total: number; used: number; available: number };
  disks: Array<{ role: 'state' | 'docker'; path: string; total: number; free: number; available: number }>;
  /** Degrees Celsius; null on boards without a sensor. */
  cpuTemperature: number | null;
  uptime: number;
}

export interface DockerState {
  available: boolean;
  version?: string;
  apiVersion?: string;
  os?: string;
  arch?: string;
  rootDir?: string;
  error?: { code: string; message: string };
  since: string;
}

export interface UsbIdentity {
  vid: string;
  pid: string;
  busnum: number;
  devnum: number;
  serial: string | null;
}

export interface LidarHealthState {
  status: 'good' | 'warning' | 'error' | 'unknown';
  errorCode: number | null;
  checkedAt: string | null;
  /** Another process (the ROS driver) holds the port: health is the last known. */
  busy: boolean;
  reason?: string;
}

export interface DevicesState {
  lidar: {
    present: boolean;
    /** What to open: the udev alias when there is one, else the tty. */
    path: string | null;
    /** The tty node itself. */
    node: string | null;
    usb: UsbIdentity | null;
    health: LidarHealthState;
    info: { model: number; modelName: string; firmware: string; hardware: number; serial: string } | null;
  };
  camera: {
    present: boolean;
    depth: { busnum: number; devnum: number; node: string } | null;
    rgb: { busnum: number; devnum: number; node: string; video: string[] } | null;
  };
  board: { present: boolean; path: string | null; node: string | null; usb: UsbIdentity | null };
}

export interface ImageSummary {
  id: string;
  tags: string[];
  digests: string[];
  /** Bytes on disk, including layers shared with other images. */
  size: number;
  /** Of size, bytes in layers other images use too; the rest is unique to this image. */
  sharedSize: number;
  uniqueSize: number;
  created: string;
  /** RootFS layer digests (uncompressed diff ids), base first, as `docker image inspect` shows. */
  layers: string[];
  /** Containers (running or not) created from it. */
  containers: number;
  /** images.verify: the signature checked before it was pulled (absent: not covered, or not pulled verified). */
  verified?: { image: string; digest: string; key: string; at: string };
}

export interface ContainerState {
  name: string;
  /** The image it should run (the desired one), familiar form. */
  image: string;
  imageId: string | null;
  /** What it runs from when that is not `image`: a commit made to keep its changes. */
  runImage?: string;
  /** Docker's state, or absent when there is no container yet. */
  state: 'absent' | 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';
  health: 'starting' | 'healthy' | 'unhealthy' | null;
  startedAt: string | null;
  /** Restarts by Docker's restart policy and by the agent. */
  restarts: number;
  exitCode: number | null;
  devices: Array<{ device: string; host: string; container: string }>;
  missingDevices: string[];
  desired: { image: string; enabled: boolean; source: 'config' | 'desired' };
  inSync: boolean;
  /** Why it is not in sync. */
  reason?: string;
  /** The last step that failed for it, until one succeeds. */
  error?: { code: string; message: string; at: string };
}

export interface DesiredStateInfo {
  /** When the last <b>/desired message was accepted (null: none; the local config applies). */
  appliedAt: string | null;
  version?: string | number;
  /** The last message refused, and why; the previous desired state stays in force. */
  rejected?: { code: string; message: string; at: string; reason?: string };
}

export interface UpdateResult {
  /** `scheduled`: accepted outside the maintenance window; it runs at nextWindow, its outcome as events. */
  status: 'done' | 'rolledback' | 'failed' | 'up_to_date' | 'scheduled';
  container: string;
  from: string | null;
  to: string;
  at: string;
  error?: { code: string; message: string };
  /** A new container that failed: its exit code (null while it ran) and its last lines (<= 20, <= 4 KiB). */
  exitCode?: number | null;
  logs?: string[];
  /** With `scheduled`: when the window opens next (null: never, by its cron). */
  nextWindow?: string | null;
}

/** How an update that ran ended (the update, rollback and restore commands' result): never `scheduled`. */
export type UpdateOutcome = UpdateResult & { status: Exclude<UpdateResult['status'], 'scheduled'> };

/** The update flow: what it is doing now, and how the last one ended. */
export interface UpdateState {
  status: 'idle' | 'waiting' | 'pulling' | 'swapping' | 'verifying' | 'done' | 'rolledback' | 'failed';
  container?: string;
  from?: string | null;
  to?: string;
  requestId?: string;
  /** Bytes of the pull, while pulling. */
  progress?: { current: number; total: number } | null;
  waitingFor?: 'window' | 'lock';
  /** When the maintenance window opens next, while waiting for it. */
  nextWindow?: string | null;
  lastResult?: UpdateResult;
}

export interface SnapshotSummary {
  image: string;
  id: string;
  container: string;
  created: string;
  /** Bytes of the whole image, and of the one layer the snapshot added. */
  size: number;
  layerBytes: number;
  /** Where it was pushed (the reference) and saved (the file), if it was. */
  pushed: string | null;
  savedTo: string | null;
}

export interface AgentState {
  robot: string;
  ts: string;
  agent: {
    version: string;
    /** The MQTT API version (agent/mqtt/api-version.ts); absent from agents before 0.2.0. */
    apiVersion?: number;
    startedAt: string;
    pid: number;
    modules: Record<string, ModuleStatus>;
    mqtt: {
      connected: boolean;
      protocolVersion: 4 | 5;
      broker: 'embedded' | 'external';
      eventsDropped: number;
      eventsBuffered: number;
      reconnects: number;
    };
    /** Signed commands: whether required, the key ids, and a warning when unsigned ones come from a fleet broker. */
    commandSigning?: { required: boolean; keys: string[]; warning?: string };
  };
  host: {
    hostname: string;
    platform: string;
    arch: string;
    cpus: number;
    metrics: HostMetrics | null;
  };
  docker: DockerState;
  devices: DevicesState;
  images: ImageSummary[];
  containers: ContainerState[];
  desired: DesiredStateInfo;
  update: UpdateState;
  /** The newest snapshots on the robot, newest first. */
  snapshots: SnapshotSummary[];
}

/** The parts a module may change; robot, ts and agent.version are the publisher's. */
export type StateSection =
  'agent' | 'host' | 'docker' | 'devices' | 'images' | 'containers' | 'desired' | 'update' | 'snapshots';
