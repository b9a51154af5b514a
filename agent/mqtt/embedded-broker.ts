import { createServer, type Server, type Socket } from 'node:net';
import type { Aedes, Client } from 'aedes';
import { AgentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

/**
 * The biggest MQTT packet a client may send the embedded broker (its remaining length, after the
 * fixed header). Requests are
 * at most 256 KiB and the desired state 64 KiB; the agent's own state is well below this.
 */
export const EMBEDDED_MAX_PACKET_BYTES = 1024 * 1024;
/**
 * The biggest CONNECT: it comes before the password is checked, so anyone on the robot may send
 * one; a real one is a few hundred bytes.
 */
export const EMBEDDED_MAX_CONNECT_BYTES = 64 * 1024;
/** Connections at once: before login each holds at most a CONNECT's worth of memory. */
export const EMBEDDED_MAX_CONNECTIONS = 128;
/** A client that has not logged in within this is dropped (aedes' default is 30 s). */
const CONNECT_TIMEOUT_MS = 10_000;
export const EMBEDDED_DEFAULT_USERNAME = 'robot-agent';

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  /** Every client must present them: the config's, or the password made in state.dir (embedded-password.ts). */
  credentials: { username: string; password: string };
  maxPacketBytes?: number;
  logger: Logger;
}

/**
 * A small MQTT 3.1.1 broker (aedes) inside the agent, so a robot with no fleet server still
 * serves its state and commands to on-robot tools. Not a fleet broker: no persistence, no TLS.
 * Every client needs the username and password (ROS containers share the host's network, so
 * loopback is not a boundary), and a packet over the size cap drops its sender.
 */
export class EmbeddedBroker {
  readonly name = 'embedded-broker';
  private broker: Aedes | undefined;
  private server: Server | undefined;
  private boundPort: number | undefined;
  private uncappedWarned = false;

  constructor(private readonly options: EmbeddedBrokerOptions) {}

  /** What every client must present (the agent's own link, robot-fleet, tests). */
  get credentials(): { username: string; password: string } {
    return this.options.credentials;
  }

  /** The port really listened on (differs from options.port when that is 0). */
  get port(): number {
    return this.boundPort ?? this.options.port;
  }

  async start(): Promise<void> {
    const credentials = this.options.credentials;
    const maxPacketBytes = this.options.maxPacketBytes ?? EMBEDDED_MAX_PACKET_BYTES;
    // Loaded here, not at the top: a robot on a fleet broker never starts this one, and aedes
    // with its dependencies is resident memory for nothing there (issue 14: the cost of one robot).
    const { Aedes: AedesBroker } = await import('aedes');
    const broker = await AedesBroker.createBroker({ connectTimeout: CONNECT_TIMEOUT_MS });
    broker.authenticate = (_client, username, password, done) => {
      const ok = username === credentials.username && password?.toString() === credentials.password;
      if (ok) {
        done(null, true);
        return;
      }
      const err = Object.assign(new Error('bad username or password'), { returnCode: 4 as const });
      done(err, false);
    };
    // A second guard behind the parser's (below): never route a payload over the cap.
    broker.authorizePublish = (_client, packet, done) => {
      done(packet.payload.length > maxPacketBytes ? new Error(`payload over ${maxPacketBytes} bytes`) : null);
    };
    broker.on('clientError', (client, err) =>
      this.options.logger.debug('embedded broker client error', { client: client.id, error: err }),
    );
    broker.on('connectionError', (_client, err) =>
      this.options.logger.debug('embedded broker connection error', { error: err }),
    );
    const server = createServer((socket) => this.accept(broker, socket, maxPacketBytes));
    server.maxConnections = EMBEDDED_MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(this.listenError(err)));
      server.listen(this.options.port, this.options.host, () => resolve());
    }).catch(async (err: unknown) => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      throw err;
    });
    server.on('error', (err) => this.options.logger.error('embedded broker server error', { error: err }));
    const address = server.address();
    this.boundPort = typeof address === 'object' && address ? address.port : this.options.port;
    this.broker = broker;
    this.server = server;
    this.options.logger.info('embedded broker listening', {
      host: this.options.host,
      port: this.boundPort,
      username: credentials.username,
      maxPacketBytes,
    });
  }

  async stop(): Promise<void> {
    const { server, broker } = this;
    this.server = undefined;
    this.broker = undefined;
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(broker: Aedes, socket: Socket, maxPacketBytes: number): void {
    // Commands and their answers are small and interactive: no Nagle delay.
    socket.setNoDelay(true);
    if (!capPacketSize(broker.handle(socket), maxPacketBytes) && !this.uncappedWarned) {
      this.uncappedWarned = true;
      this.options.logger.warn('no aedes parser hook: oversized packets are refused only once received whole');
    }
  }

  private listenError(err: NodeJS.ErrnoException): AgentError {
    const { host, port } = this.options;
    if (err.code === 'EADDRINUSE') {
      // Connecting to whoever holds the port would hand the robot to a broker the agent did not
      // start (and its password to that process): the agent refuses to run instead.
      return new AgentError(
        'embedded_broker_port_taken',
        `the embedded broker cannot listen on ${host}:${port}: another process already listens on port ${port}. ` +
          'The agent only talks to a broker it started or to the one named in mqtt.url: stop that process, ' +
          'set mqtt.embedded.port to a free port, or set mqtt.url to use that broker as the fleet broker',
      );
    }
    const why = err.code ?? err.message;
    return new AgentError('embedded_broker_listen', `the embedded broker cannot listen on ${host}:${port}: ${why}`);
  }
}

/**
 * mqtt-packet's parser has no size limit: it buffers a packet whole, whatever length its header
 * announces. Its length step is wrapped so a packet announcing more than the cap is an error as
 * soon as the length is read, and aedes drops the client before the body is buffered.
 */
function capPacketSize(client: Client, maxPacketBytes: number): boolean {
  const parser = (client as unknown as { _parser?: PacketParser })._parser;
  if (!parser || typeof parser._parseLength !== 'function' || typeof parser._emitError !== 'function') {
    // Another aedes version: authorizePublish still refuses the payload, once received.
    return false;
  }
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with .call(this)
  const parseLength = parser._parseLength;
  parser._parseLength = function capped(this: PacketParser): boolean {
    const done = parseLength.call(this);
    const limit = this.packet.cmd === 'connect' ? Math.min(maxPacketBytes, EMBEDDED_MAX_CONNECT_BYTES) : maxPacketBytes;
    if (done && this.packet.length > limit) {
      const { cmd, length } = this.packet;
      this._emitError(new Error(`${cmd} packet of ${length} bytes is over the ${limit}-byte limit`));
      return false;
    }
    return done;
  };
  return true;
}

interface PacketParser {
  packet: { cmd: string; length: number };
  _parseLength(this: PacketParser): boolean;
  _emitError(err: Error): void;
}
