import type { KeyObject } from 'node:crypto';

/** The validated configuration: config/schema.json with every default filled in. */
export interface AgentConfig {
  robot: { id: string };
  mqtt: {
    url?: string;
    baseTopic: string;
    clientId?: string;
    protocolVersion: 4 | 5;
    username?: string;
    passwordFile?: string;
    ca?: string;
    cert?: string;
    key?: string;
    heartbeat: number;
    keepalive: number;
    sessionExpiry: number;
    eventBuffer: number;
    reconnect: { initial: number; max: number };
    embedded: { host: string; port: number; username?: string; passwordFile?: string };
  };
  docker: { socketPath: string; deadlines: { probe: number; read: number; change: number; stopMargin: number } };
  images: {
    allow: string[];
    pushAllow: string[];
    stallTimeout: number;
    diskFactor: number;
    diskReserve: number;
    keep: number;
    exportDir: string;
    /** Bytes images.exportDir may hold (saves and snapshot saves are refused beyond). */
    exportMaxBytes: number;
    importDir: string;
    buildDir: string;
    buildNetwork: 'host' | 'none' | 'default';
    dockerConfig?: string;
    /** Signed images: repositories matching a pattern run only when signed by one of its keys (PEM files). */
    verify?: Array<{ pattern: string; keys: string[] }>;
  };
  registries: Record<string, { mirror?: string; username?: string; passwordFile?: string; insecure?: boolean }>;
  devices: {
    sysfsRoot: string;
    devRoot: string;
    pollInterval: number;
    watch: boolean;
    lidar: {
      vid: string;
      pid: string;
      alias: string;
      path?: string;
      baudRate: number;
      checkInterval: number;
      timeout: number;
    };
    camera: { vid: string; depthPid: string; rgbPid: string; depthAlias: string; rgbAlias: string };
    board: { vid: string; pid: string; alias: string };
  };
  containers: Record<string, ContainerSpec>;
  reconcile: { interval: number; retry: { initial: number; max: number }; logTail: number };
  update: {
    window?: { cron: string; minutes: number };
    lockFile: string;
    lockMaxWait: number;
    stableSeconds: number;
    healthTimeout: number;
    check?: string;
    /** Backoff of a failed background update, in seconds: doubles from initial up to max, reset by a success. */
    retry: { initial: number; max: number };
  };
  snapshots: {
    repository: string;
    keep: number;
    pause: boolean;
    schedule?: string;
    containers: string[];
    push: boolean;
    /** This robot's P-256 private key (PEM): pushed snapshots are signed with it. */
    signKeyFile?: string;
  };
  state: { dir: string };
  /** docs/security.md#signed-commands; `required` unset means: true when keys are given. */
  security: {
    commands: {
      keys: Array<{ id: string; publicKeyFile: string }>;
      required?: boolean;
      clockSkewSeconds: number;
      maxLifetimeSeconds: number;
      desiredMaxLifetimeSeconds: number;
    };
  };
  metrics: { interval: number };
  log: { level: 'debug' | 'info' | 'warn' | 'error' };
}

export type CatalogDevice = 'lidar' | 'camera' | 'board';

/** A container as the robot's own config defines it (config/schema.json, containers.<name>). */
export interface ContainerSpec {
  image: string;
  enabled: boolean;
  /** Catalog devices by name, or literal /dev paths. */
  devices: string[];
  required: CatalogDevice[];
  replug: 'live' | 'recreate';
  deviceMajors: number[];
  network: 'host' | 'none' | 'bridge';
  env: Record<string, string>;
  ports: string[];
  mounts: string[];
  command?: string[];
  workingDir?: string;
  user?: string;
  tty: boolean;
  restart: 'no' | 'always' | 'unless-stopped' | 'on-failure';
  privileged: boolean;
  capAdd: string[];
  shmSize?: number;
  stopTimeout: number;
  probe?: string[];
}

/**
 * Passwords live apart from the config so that nothing which serialises the config (state,
 * logs, check-config output) can leak them.
 */
export interface Secrets {
  mqttPassword?: string;
  embeddedPassword?: string;
  /** Registry passwords by registry host. */
  registryPasswords?: Record<string, string>;
  /** Credentials from images.dockerConfig, by registry host. */
  dockerConfigAuths?: Record<string, { username: string; password: string }>;
}

export interface LoadedConfig {
  config: AgentConfig;
  secrets: Secrets;
  /** Where it came from, for logs. */
  source: string;
  /** security.commands.keys, read and checked (Ed25519 public keys by key id). */
  commandKeys?: ReadonlyMap<string, KeyObject>;
}
