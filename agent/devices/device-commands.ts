import { defineCommand, type CommandDefinition } from '../commands/command.js';
import type { DevicesModule } from './devices-module.js';

export function deviceCommands(devices: DevicesModule): CommandDefinition[] {
  return [
    defineCommand({
      name: 'devices',
      // A dashboard that asks wants now, not the last poll.
      run: async () => devices.rescan(),
    }),
    defineCommand({
      name: 'devices.check',
      run: async () => devices.checkLidar(true),
    }),
  ];
}
