import type { Logger } from '../agent/core/logger.js';
import { EventPublisher } from '../agent/mqtt/event-publisher.js';
import { MqttLink } from '../agent/mqtt/mqtt-link.js';
import { StatePublisher } from '../agent/mqtt/state-publisher.js';
import { buildTopics } from '../agent/mqtt/topics.js';
import { EventBus } from '../agent/state/event-bus.js';
import { StateStore } from '../agent/state/state-store.js';
import type { AgentState } from '../agent/state/types.js';
import { rosContainer, rosImage, V339_ID, V340_ID, x3State } from '../test/helpers/x3-state.js';

export interface SimRobotOptions {
  id: string;
  url: string;
  baseTopic: string;
  /** The summary's "still here" period (mqtt.heartbeat), ms; the shipped default is 60 s. */
  heartbeatMs: number;
  logger: Logger;
}

/**
 * One simulated robot that sends what an agent sends, because it is the agent's own publishing
 * code: MqttLink (availability online on connect, offline as the last will, the persistent
 * session, the request and desired subscriptions), StatePublisher (the summary from
 * `summarise` and the sections, retained, the heartbeat) and EventPublisher, over a StateStore
 * that holds a realistic X3 state. Only the observing modules (Docker, sysfs, lidar) are left
 * out: the simulator changes the store the way they do.
 */
export class SimRobot {
  readonly store: StateStore;
  private readonly bus = new EventBus();
  private readonly link: MqttLink;
  private readonly parts: Array<{ start(): Promise<void>; stop(): Promise<void> }>;

  constructor(
    readonly options: SimRobotOptions,
    index: number,
  ) {
    const topics = buildTopics(options.baseTopic, options.id);
    this.store = new StateStore(simState(options.id, index));
    // The agent's defaults (config/schema.json): MQTT 5, keepalive 30 s, session expiry 600 s.
    this.link = new MqttLink({
      url: options.url,
      clientId: `robot-agent-${options.id}`,
      protocolVersion: 5,
      keepaliveSeconds: 30,
      sessionExpirySeconds: 600,
      availabilityTopic: topics.availability,
      subscriptions: [topics.requests, topics.desired],
      reconnect: { initialMs: 1000, maxMs: 60_000 },
      queueCapacity: 1000,
      logger: options.logger,
    });
    const events = new EventPublisher({ bus: this.bus, link: this.link, topics, store: this.store });
    const state = new StatePublisher({
      store: this.store,
      link: this.link,
      topics,
      heartbeatMs: options.heartbeatMs,
      logger: options.logger,
    });
    this.parts = [events, state];
  }

  get connected(): boolean {
    return this.link.connected;
  }

  /** Publishers first, as the agent orders them: the first connect then sends everything. */
  async start(): Promise<void> {
    for (const part of this.parts) await part.start();
    await this.link.start();
  }

  onConnect(listener: () => void): () => void {
    return this.link.onConnect(listener);
  }

  async stop(): Promise<void> {
    for (const part of [...this.parts].reverse()) await part.stop();
    await this.link.stop(1000);
  }

  /**
   * The lidar unplugged or plugged back, as the devices module reports it: the devices section
   * first, then the event (devices-module.ts rescan). Returns when the change was made (ms).
   */
  setLidar(present: boolean): number {
    const at = Date.now();
    const before = this.store.get().devices.lidar;
    const lidar = present
      ? { ...x3State().devices.lidar }
      : { ...before, present: false, path: null, node: null, usb: null };
    this.store.update('devices', (devices) => ({ ...devices, lidar }));
    this.bus.emit(present ? 'device.attached' : 'device.detached', {
      device: 'lidar',
      present,
      path: lidar.path,
      node: lidar.node,
    });
    return at;
  }

  get lidarPresent(): boolean {
    return this.store.get().devices.lidar.present;
  }
}

/**
 * A ROSMASTER X3 as the unit tests build it (test/helpers/x3-state.ts), named id, with the
 * variety a real fleet has: every 20th robot has its camera unplugged, every 50th runs 3.3.9
 * while 3.4.0 is desired (both images on it), every 10th kept a snapshot.
 */
export function simState(id: string, index: number): AgentState {
  const state = x3State();
  state.robot = id;
  state.host.hostname = id;
  state.agent.pid = 1000 + (index % 30_000);
  if (index % 20 === 19) state.devices.camera = { present: false, depth: null, rgb: null };
  if (index % 50 === 49) {
    const to = 'yahboomtechnology/ros-foxy:3.4.0';
    state.images = [rosImage('3.3.9', V339_ID), rosImage('3.4.0', V340_ID, { containers: 0 })];
    state.containers = [rosContainer({ image: to, desired: { image: to, enabled: true, source: 'desired' } })];
  }
  if (index % 10 === 9) {
    state.snapshots = [
      {
        image: `ros-keep:${id}-20261201`,
        id: `sha256:${'e'.repeat(64)}`,
        container: 'ros',
        created: state.ts,
        size: 6_950_000_000,
        layerBytes: 52_000_000,
        pushed: null,
        savedTo: null,
      },
    ];
  }
  return state;
}
