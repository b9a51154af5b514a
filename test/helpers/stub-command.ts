import {
  defineCommand,
  type CommandArgs,
  type CommandDefinition,
  type CommandLane,
  type CommandName,
} from '../../agent/commands/command.js';

/**
 * A stand-in handler for router tests: its arguments typed as the command's, its result anything.
 * The router never checks results against the schema (only tests do), and these tests assert how
 * the router answers (ids, redeliveries, lanes), not what the real command returns.
 */
export function stubCommand<K extends CommandName>(definition: {
  name: K;
  lane?: CommandLane;
  run(args: CommandArgs<K>): Promise<unknown>;
}): CommandDefinition {
  return defineCommand(definition as unknown as CommandDefinition<K>);
}
