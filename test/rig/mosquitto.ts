import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeCerts, type RigCerts } from './certs.js';
import { startDaemon, type Daemon } from './daemon.js';
import { freePort, tcpOpen } from './net.js';

export interface MosquittoRig {
  /** Anonymous, plain TCP. */
  url: string;
  port: number;
  /** Username and password required (password file). */
  authUrl: string;
  username: string;
  password: string;
  passwordFile: string;
  /** TLS with a client certificate required (mutual TLS). */
  tlsUrl: string;
  certs: RigCerts;
  /**
   * Same ports, same config: a broker restart loses retained messages and sessions (unless started with
   * persistence).
   */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** A real mosquitto (MQTT 3.1.1 and 5) with three loopback listeners and files under dir. */
export async function startMosquitto(
  dir: string,
  /** extraConfig: lines added to the general section (e.g. a max_packet_size for a test). */
  o: { persistence?: boolean; extraConfig?: string[] } = {},
): Promise<MosquittoRig> {
  mkdirSync(dir, { recursive: true });
  const [port, authPort, tlsPort] = [await freePort(), await freePort(), await freePort()];
  const certs = makeCerts(dir);
  const username = 'robot';
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const passwordFile = join(dir, 'robot.password');
  writeFileSync(passwordFile, password + '\n');
  const brokerPasswords = join(dir, 'mosquitto.passwd');
  execFileSync('mosquitto_passwd', ['-b', '-c', brokerPasswords, username, password], { stdio: 'ignore' });
  const configFile = join(dir, 'mosquitto.conf');
  writeFileSync(
    configFile,
    [
      // As root, mosquitto would otherwise drop to user "mosquitto" and lose our temp files.
      'user root',
      'per_listener_settings true',
      // Without it every answer waits for a delayed ACK (Nagle's algorithm): ~40 ms per hop.
      'set_tcp_nodelay true',
      ...(o.persistence ? ['persistence true', `persistence_location ${dir}/`] : ['persistence false']),
      'log_dest stdout',
      'log_type error',
      'log_type warning',
      'log_type notice',
      ...(o.extraConfig ?? []),
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      `listener ${authPort} 127.0.0.1`,
      'allow_anonymous false',
      `password_file ${brokerPasswords}`,
      `listener ${tlsPort} 127.0.0.1`,
      'allow_anonymous true',
      `cafile ${certs.ca}`,
      `certfile ${certs.serverCert}`,
      `keyfile ${certs.serverKey}`,
      'require_certificate true',
      '',
    ].join('\n'),
  );
  let daemon: Daemon | undefined;
  const start = async () => {
    daemon = await startDaemon({
      name: 'mosquitto',
      cmd: 'mosquitto',
      args: ['-c', configFile],
      logFile: join(dir, 'mosquitto.log'),
      ready: async () => (await tcpOpen(port)) && (await tcpOpen(authPort)) && (await tcpOpen(tlsPort)),
    });
  };
  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    authUrl: `mqtt://127.0.0.1:${authPort}`,
    username,
    password,
    passwordFile,
    tlsUrl: `mqtts://127.0.0.1:${tlsPort}`,
    certs,
    start,
    stop: async () => {
      await daemon?.stop();
      daemon = undefined;
    },
  };
}
