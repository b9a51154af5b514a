import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import { AgentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  /** Required by the config loader when host is beyond loopback. */
  credentials?: { username: string; password: string };
  logger: Logger;
}

/**
 * A small MQTT 3.1.1 broker (aedes) inside the agent, so a robot with no fleet server still
 * serves its state and commands to on-robot tools. Not a fleet broker: no persistence, no TLS.
 */
export class EmbeddedBroker {
  readonly name = 'embedded-broker';
  private broker: Aedes | undefined;
  private server: Server | undefined;
  private boundPort: number | undefined;

  constructor(private readonly options: EmbeddedBrokerOptions) {}

  /** The port really listened on (differs from options.port when that is 0). */
  get port(): number {
    return this.boundPort ?? this.options.port;
  }

  async start(): Promise<void> {
    const broker = await Aedes.createBroker();
    const credentials = this.options.credentials;
    if (credentials) {
      broker.authenticate = (_client, username, password, done) => {
        const ok = username === credentials.username && password?.toString() === credentials.password;
        if (ok) {
          done(null, true);
          return;
        }
        const err = Object.assign(new Error('bad username or password'), { returnCode: 4 as const });
        done(err, false);
      };
    }
    broker.on('clientError', (client, err) => this.options.logger.debug('embedded broker client error', { client: client.id, error: err }));
    const server = createServer(broker.handle);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(new AgentError('embedded_broker_listen', `embedded broker cannot listen on ${this.options.host}:${this.options.port}: ${err.code ?? err.message}`));
      });
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
    this.options.logger.info('embedded broker listening', { host: this.options.host, port: this.boundPort, auth: credentials !== undefined });
  }

  async stop(): Promise<void> {
    const { server, broker } = this;
    this.server = undefined;
    this.broker = undefined;
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
