import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startDaemon, type Daemon } from './daemon.js';
import { freePort, httpStatus } from './net.js';

export interface RegistryRig {
  /** host:port, the prefix of pushed references: 127.0.0.1:5xxx/yahboomtechnology/ros-foxy:3.3.9 */
  host: string;
  port: number;
  url: string;
  /** With `auth`: htpasswd (bcrypt) credentials the registry demands. */
  username?: string;
  password?: string;
  passwordFile?: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** A real registry (Debian's docker-registry) on loopback, storing under dir. */
export async function startRegistry(
  dir: string,
  o: { proxyRemoteUrl?: string; auth?: boolean } = {},
): Promise<RegistryRig> {
  mkdirSync(join(dir, 'storage'), { recursive: true });
  const port = await freePort();
  const username = 'fleet';
  const password = `reg-${Math.random().toString(36).slice(2)}`;
  const passwordFile = join(dir, 'registry.password');
  if (o.auth) {
    // The registry only takes bcrypt: htpasswd -B (apache2-utils).
    writeFileSync(
      join(dir, 'htpasswd'),
      execFileSync('htpasswd', ['-nbB', username, password]).toString().trim() + '\n',
    );
    writeFileSync(passwordFile, password + '\n');
  }
  const config = {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: join(dir, 'storage') }, delete: { enabled: true } },
    http: { addr: `127.0.0.1:${port}` },
    ...(o.proxyRemoteUrl ? { proxy: { remoteurl: o.proxyRemoteUrl } } : {}),
    ...(o.auth ? { auth: { htpasswd: { realm: 'rig-registry', path: join(dir, 'htpasswd') } } } : {}),
  };
  const configFile = join(dir, 'config.yml');
  writeFileSync(configFile, stringify(config));
  let daemon: Daemon | undefined;
  const start = async () => {
    daemon = await startDaemon({
      name: 'docker-registry',
      cmd: 'docker-registry',
      args: ['serve', configFile],
      logFile: join(dir, 'registry.log'),
      ready: async () => [200, 401].includes(await httpStatus({ port, path: '/v2/' })),
    });
  };
  await start();
  return {
    host: `127.0.0.1:${port}`,
    port,
    url: `http://127.0.0.1:${port}`,
    ...(o.auth ? { username, password, passwordFile } : {}),
    start,
    stop: async () => {
      await daemon?.stop();
      daemon = undefined;
    },
  };
}
