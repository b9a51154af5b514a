import { existsSync } from 'node:fs';
import { defaultConfigFile } from './load-config.js';

/** Where deploy/install.sh puts the robot's config, and where the unit's --config points. */
export const SYSTEM_CONFIG_FILE = '/etc/robot-agent/config.yaml';

/**
 * The config file when no --config is given: on an installed robot, the robot's own file (an
 * operator typing `robot-agent check-config` there means that one, not the package's defaults
 * under /opt); anywhere else (a clone, `npm start`), the embedded defaults.
 */
export function configFileToUse(exists: (file: string) => boolean = existsSync, system = SYSTEM_CONFIG_FILE): string {
  return exists(system) ? system : defaultConfigFile();
}
