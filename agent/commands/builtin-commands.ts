import type { StatePublisher } from '../mqtt/state-publisher.js';
import { defineCommand, type CommandDefinition } from './command.js';

/** Commands every agent answers, whatever else it runs. */
export function builtinCommands(deps: { statePublisher: StatePublisher }): CommandDefinition[] {
  return [
    defineCommand({
      name: 'ping',
      run: async () => ({ pong: true, ts: new Date().toISOString() }),
    }),
    defineCommand({
      name: 'state',
      // Republishes the retained state too: a dashboard that asks is refreshing its view.
      run: async () => deps.statePublisher.publishNow(),
    }),
  ];
}
