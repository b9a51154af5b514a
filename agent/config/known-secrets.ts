import { SecretSet } from '../core/logger.js';
import type { LoadedConfig } from './types.js';

/** The embedded broker's user when the config names none (agent/mqtt/embedded-broker.ts). */
const EMBEDDED_DEFAULT_USERNAME = 'robot-agent';

/**
 * Every secret the configuration brought, with the user it goes with, for the logger to redact:
 * the MQTT and embedded broker passwords, registry passwords and Docker config credentials.
 */
export function knownSecrets(loaded: LoadedConfig): SecretSet {
  const { config, secrets } = loaded;
  const set = new SecretSet();
  set.addCredentials(config.mqtt.username ?? '', secrets.mqttPassword);
  set.addCredentials(config.mqtt.embedded.username ?? EMBEDDED_DEFAULT_USERNAME, secrets.embeddedPassword);
  for (const [host, password] of Object.entries(secrets.registryPasswords ?? {})) {
    set.addCredentials(config.registries[host]?.username ?? '', password);
  }
  for (const auth of Object.values(secrets.dockerConfigAuths ?? {})) set.addCredentials(auth.username, auth.password);
  return set;
}
