import { availableParallelism, hostname } from 'node:os';
import { builtinCommands } from './commands/builtin-commands.js';
import { CommandRouter } from './commands/command-router.js';
import { loadVerifyRules, readSigningKey } from './config/image-keys.js';
import type { LoadedConfig } from './config/types.js';
import type { Logger } from './core/logger.js';
import { Supervisor, type AgentModule } from './supervisor.js';
import { containerCommands } from './containers/container-commands.js';
import { ContainersModule } from './containers/containers-module.js';
import { DesiredListener } from './containers/desired-listener.js';
import { DESIRED_LIMITS } from './containers/desired-state.js';
import { deviceCommands } from './devices/device-commands.js';
import { absentDevices } from './devices/device-resolver.js';
import { DevicesModule } from './devices/devices-module.js';
import { DockerodeEngine } from './docker/dockerode-engine.js';
import { DockerEngineLink } from './docker/engine-link.js';
import { imageCommands } from './images/image-commands.js';
import { ImageFiles } from './images/image-files.js';
import { ImageInventory } from './images/image-inventory.js';
import { ImagePuller } from './images/image-puller.js';
import { ImageVerifier } from './images/image-verifier.js';
import { SignatureStore } from './images/signature-store.js';
import { RegistryClient } from './images/registry-client.js';
import { HostMetricsSampler } from './metrics/host-metrics.js';
import { snapshotCommands } from './snapshot/snapshot-commands.js';
import { SnapshotRecords } from './snapshot/snapshot-records.js';
import { SnapshotsModule } from './snapshot/snapshots-module.js';
import { Snapshotter } from './snapshot/snapshotter.js';
import { UpdateCheck } from './update/update-check.js';
import { updateCommands } from './update/update-commands.js';
import type { SwapStep } from './update/update-journal.js';
import { Updater } from './update/updater.js';
import { SerialQueue } from './core/serial-queue.js';
import { EMBEDDED_DEFAULT_USERNAME, EmbeddedBroker } from './mqtt/embedded-broker.js';
import { embeddedPassword } from './mqtt/embedded-password.js';
import { EventPublisher } from './mqtt/event-publisher.js';
import { MqttLink } from './mqtt/mqtt-link.js';
import { MQTT_API_VERSION } from './mqtt/api-version.js';
import { StatePublisher } from './mqtt/state-publisher.js';
import { buildTopics, type Topics } from './mqtt/topics.js';
import { signingPolicy, CommandSigning } from './security/command-signing.js';
import { DesiredSignature } from './security/desired-signature.js';
import { ReplayStore } from './security/replay-store.js';
import { EventBus } from './state/event-bus.js';
import { StateDir } from './state/state-dir.js';
import { StateStore } from './state/state-store.js';
import type { AgentState } from './state/types.js';

export interface Agent {
  start(): Promise<void>;
  /** Stops every module in reverse order within budgetMs, publishing offline on the way out. */
  stop(budgetMs: number): Promise<void>;
  readonly store: StateStore;
  readonly bus: EventBus;
  readonly topics: Topics;
  readonly embeddedBroker: EmbeddedBroker | undefined;
}

export interface BuildAgentOptions {
  loaded: LoadedConfig;
  logger: Logger;
  version: string;
  /** Fault injection for the crash tests only (ROBOT_AGENT_TEST_KILL_AT in main.ts). */
  onUpdateStep?: (step: SwapStep) => void;
  /** The same for the steps of a recreate (`recreate:<step>`). */
  onRecreateStep?: (step: string) => void;
  /** The clock signatures are checked against (tests inject one); Date.now when not given. */
  now?: () => number;
}

/**
 * The composition root: every module is built here, handed what it depends on, and listed in
 * the order it starts. Reading this function top to bottom is reading the agent.
 */
export function buildAgent(options: BuildAgentOptions): Agent {
  const { loaded, logger, version, onUpdateStep, onRecreateStep, now = Date.now } = options;
  const { config, secrets } = loaded;
  const robotId = config.robot.id;
  const topics = buildTopics(config.mqtt.baseTopic, robotId);
  const useEmbedded = config.mqtt.url === undefined;
  const protocolVersion = useEmbedded ? 4 : config.mqtt.protocolVersion;

  const store = new StateStore(initialState({ robotId, version, protocolVersion, embedded: useEmbedded }));
  const bus = new EventBus((err, event) =>
    logger.error('event listener failed', { event: event.type, error: err as Error }),
  );

  // 1. The agent's own directory, and in it the signatures already used (read before any request).
  const stateDir = new StateDir(config.state.dir);
  const signingConfig = config.security.commands;
  const replay = new ReplayStore({ dir: config.state.dir, clockSkewSeconds: signingConfig.clockSkewSeconds, now });
  const policy = signingPolicy(config);
  const signing = new CommandSigning({
    policy,
    keys: loaded.commandKeys ?? new Map(),
    robotId,
    clockSkewSeconds: signingConfig.clockSkewSeconds,
    maxLifetimeSeconds: signingConfig.maxLifetimeSeconds,
    replay,
    now,
  });
  const desiredSignature = new DesiredSignature({
    verifier: signing.verifier,
    required: policy.required,
    maxLifetimeSeconds: signingConfig.desiredMaxLifetimeSeconds,
    maxBytes: DESIRED_LIMITS.maxBytes,
    dir: config.state.dir,
    logger: logger.child('desired'),
  });
  store.update('agent', (agent) => ({ ...agent, commandSigning: policy }));
  if (policy.warning) logger.warn(policy.warning, { code: 'commands_unsigned' });

  // 2. The embedded broker, only when no fleet broker is configured. It always requires a
  // password: ROS containers share the host's network, so loopback is no boundary. Without one
  // in the config, the agent makes one in state.dir on first start (robot-fleet reads it there).
  const embeddedCredentials = useEmbedded
    ? {
        username: config.mqtt.embedded.username ?? EMBEDDED_DEFAULT_USERNAME,
        password: secrets.embeddedPassword ?? embeddedPassword(config.state.dir),
      }
    : undefined;
  const embeddedBroker = embeddedCredentials
    ? new EmbeddedBroker({
        host: config.mqtt.embedded.host,
        port: config.mqtt.embedded.port,
        credentials: embeddedCredentials,
        logger: logger.child('embedded-broker'),
      })
    : undefined;

  // 3. The broker link, then what publishes through it: events, state, command answers.
  const link = new MqttLink({
    // A function: the embedded broker's port is known only once it listens (port 0 in tests).
    url: () =>
      config.mqtt.url ?? embeddedUrl(config.mqtt.embedded.host, embeddedBroker?.port ?? config.mqtt.embedded.port),
    clientId: config.mqtt.clientId ?? `robot-agent-${robotId}`,
    protocolVersion,
    ...mqttCredentials(config.mqtt.username, secrets.mqttPassword, embeddedCredentials),
    ...(config.mqtt.ca || config.mqtt.cert
      ? { tls: { ca: config.mqtt.ca, cert: config.mqtt.cert, key: config.mqtt.key } }
      : {}),
    keepaliveSeconds: config.mqtt.keepalive,
    sessionExpirySeconds: config.mqtt.sessionExpiry,
    availabilityTopic: topics.availability,
    subscriptions: [topics.requests, topics.desired],
    reconnect: { initialMs: config.mqtt.reconnect.initial * 1000, maxMs: config.mqtt.reconnect.max * 1000 },
    queueCapacity: config.mqtt.eventBuffer,
    logger: logger.child('mqtt'),
  });
  const eventPublisher = new EventPublisher({ bus, link, topics, store });
  const statePublisher = new StatePublisher({
    store,
    link,
    topics,
    heartbeatMs: config.mqtt.heartbeat * 1000,
    logger: logger.child('state'),
  });

  // 4. What the agent observes.
  const docker = new DockerEngineLink({
    socketPath: config.docker.socketPath,
    deadlines: config.docker.deadlines,
    // A stop without its own `t` waits the container's StopTimeout, at most the longest configured.
    stopSeconds: () => Math.max(10, ...Object.values(config.containers).map((c) => c.stopTimeout ?? 10)),
    store,
    bus,
    logger: logger.child('docker'),
  });
  // The Engine port every module changes containers and images through (one translation of
  // engine errors); it asks the link for the client at each call, so an absent engine is refused.
  const api = new DockerodeEngine(
    () => docker.required(),
    () => docker.docker,
  );
  const metrics = new HostMetricsSampler({
    store,
    logger: logger.child('metrics'),
    intervalMs: config.metrics.interval * 1000,
    stateDir: config.state.dir,
  });
  const devices = new DevicesModule({ config: config.devices, store, bus, logger: logger.child('devices') });
  const inventory = new ImageInventory({
    engine: docker,
    api,
    store,
    logger: logger.child('images'),
    // Read at each refresh, after the verifier below exists.
    verifiedOf: (id) => {
      const v = verifier.byImageId(id);
      return v ? { image: v.image, digest: v.digest, key: v.key.file, at: v.at } : undefined;
    },
  });

  // What the agent does with the engine.
  const registry = new RegistryClient({
    registries: config.registries,
    passwords: secrets.registryPasswords ?? {},
    dockerConfigAuths: secrets.dockerConfigAuths ?? {},
  });
  // images.verify: the keys were checked with the config; read here for the signature checks.
  const verifier = new ImageVerifier({
    rules: loadVerifyRules(config.images.verify ?? [], []),
    signatures: new SignatureStore(registry),
    stateDir: config.state.dir,
    logger: logger.child('verify'),
  });
  const puller = new ImagePuller({
    engine: docker,
    api,
    inventory,
    registry,
    store,
    bus,
    config: config.images,
    logger: logger.child('pull'),
    verifier,
  });
  // One queue for every change of a container: the loop's steps (updates included) and the
  // recovery of an update the agent did not live to finish never interleave.
  const changes = new SerialQueue();
  // update/ keeps policy, history and the replacement; the containers loop decides when an update
  // runs and runs it in its turn (one owner of every container change).
  const updater: Updater = new Updater({
    config,
    engine: docker,
    api,
    puller,
    store,
    bus,
    logger: logger.child('update'),
    queue: changes,
    // Saves a replaced container's work as a snapshot; built below, read when an update runs.
    work: () => snapshotter,
    ...(onUpdateStep ? { onStep: onUpdateStep } : {}),
  });
  const containers: ContainersModule = new ContainersModule({
    config,
    engine: docker,
    api,
    puller,
    inventory,
    store,
    bus,
    logger: logger.child('containers'),
    updates: updater,
    queue: changes,
    desiredSignature,
    ...(onRecreateStep ? { onRecreateStep } : {}),
  });
  const snapshotRecords = new SnapshotRecords(config.state.dir);
  // One for the agent: it counts the saves in flight against images.exportMaxBytes.
  const imageFiles = new ImageFiles({ engine: api, config: config.images });
  const snapshotter = new Snapshotter({
    config,
    files: imageFiles,
    engine: api,
    registry,
    bus,
    store,
    logger: logger.child('snapshots'),
    records: snapshotRecords,
    specOf: (name) => containers.specOf(name),
    protectedImages: () => updater.protectedImages(),
    // Checked with the config: read here for the signatures of pushed snapshots.
    ...(config.snapshots.signKeyFile ? { signKey: readSigningKey(config.snapshots.signKeyFile) } : {}),
  });
  const snapshots = new SnapshotsModule({
    config: config.snapshots,
    engine: docker,
    snapshotter,
    records: snapshotRecords,
    bus,
    logger: logger.child('snapshots'),
  });
  const updateCheck = new UpdateCheck({
    schedule: config.update.check,
    desired: () => containers.desiredContainers(),
    registry,
    refresh: (name, image) => containers.refreshImage(name, image),
    store,
    bus,
    logger: logger.child('update-check'),
  });
  const desired = new DesiredListener({
    link,
    topic: topics.desired,
    apply: (payload) => containers.applyDesired(payload),
    logger: logger.child('desired'),
  });

  // 5. What the fleet can ask of it: commands and the desired state. Listening before the link
  // connects: a persistent session delivers queued requests (and the retained desired state)
  // right after CONNACK, and none may fall on the floor.
  const commands = new CommandRouter({
    link,
    topics,
    bus,
    logger: logger.child('commands'),
    signing,
    commands: [
      ...builtinCommands({ statePublisher }),
      ...deviceCommands(devices),
      ...imageCommands({
        config: config.images,
        engine: docker,
        api,
        store,
        bus,
        inventory,
        puller,
        registry,
        protectedImages: () => updater.protectedImages(),
        files: imageFiles,
      }),
      ...containerCommands({ containers, logTail: config.reconcile.logTail }),
      ...updateCommands({ config: config.images, containers, updater, check: updateCheck }),
      ...snapshotCommands({ config, snapshotter, containers, updater }),
    ],
  });

  const modules: AgentModule[] = [
    stateDir,
    replay,
    eventPublisher,
    statePublisher,
    commands,
    desired,
    link,
    docker,
    inventory,
    metrics,
    devices,
    // Before the containers loop: a swap interrupted by a crash is settled first.
    updater,
    // Its first reconcile should see the devices already scanned.
    containers,
    updateCheck,
    snapshots,
  ];
  const supervisor = new Supervisor({ modules, store, bus, logger: logger.child('supervisor') });

  return {
    store,
    bus,
    topics,
    embeddedBroker,
    async start() {
      // Outside the supervisor, whose way is to retry while the rest runs: the link would then
      // connect to whatever holds the embedded broker's port. A broker that cannot listen is
      // fatal (main.ts exits 1 with its sentence) before anything connects anywhere.
      if (embeddedBroker) {
        await embeddedBroker.start().catch((err: unknown) => {
          logger.error('the embedded broker cannot start; the agent stops', { error: err as Error });
          throw err;
        });
        const running = { status: 'running' as const, failures: 0 };
        store.update('agent', (agent) => ({ ...agent, modules: { ...agent.modules, [embeddedBroker.name]: running } }));
      }
      await supervisor.startAll();
      const names = [...(embeddedBroker ? [embeddedBroker.name] : []), ...modules.map((m) => m.name)];
      bus.emit('agent.started', { version, pid: process.pid, modules: names });
      logger.info('agent started', {
        robot: robotId,
        version,
        broker: link.stats.connected ? 'connected' : 'connecting',
      });
    },
    async stop(budgetMs) {
      const deadline = Date.now() + budgetMs;
      // The broker last: the link says offline through it on the way out.
      await supervisor.stopAll(Math.max(0, budgetMs - 500));
      if (!embeddedBroker) return;
      await withDeadline(embeddedBroker.stop(), Math.max(100, deadline - Date.now())).catch((err: unknown) =>
        logger.warn('embedded broker did not stop cleanly', { error: err as Error }),
      );
    },
  };
}

function initialState(o: { robotId: string; version: string; protocolVersion: 4 | 5; embedded: boolean }): AgentState {
  const now = new Date().toISOString();
  return {
    robot: o.robotId,
    ts: now,
    agent: {
      version: o.version,
      apiVersion: MQTT_API_VERSION,
      startedAt: now,
      pid: process.pid,
      modules: {},
      mqtt: {
        connected: false,
        protocolVersion: o.protocolVersion,
        broker: o.embedded ? 'embedded' : 'external',
        eventsDropped: 0,
        eventsBuffered: 0,
        reconnects: 0,
      },
    },
    host: {
      hostname: hostname(),
      platform: process.platform,
      arch: process.arch,
      cpus: availableParallelism(),
      metrics: null,
    },
    docker: {
      available: false,
      error: { code: 'docker_connecting', message: 'not yet connected to the Docker engine' },
      since: now,
    },
    devices: absentDevices(),
    images: [],
    containers: [],
    desired: { appliedAt: null },
    update: { status: 'idle' },
    snapshots: [],
  };
}

/** The agent reaches its own broker on loopback even when it listens on every interface. */
function embeddedUrl(host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `mqtt://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

function mqttCredentials(
  username: string | undefined,
  password: string | undefined,
  embedded: { username: string; password: string } | undefined,
): { username?: string; password?: string } {
  if (embedded) return embedded;
  return { ...(username !== undefined ? { username } : {}), ...(password !== undefined ? { password } : {}) };
}

function withDeadline(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<void>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`did not stop within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
