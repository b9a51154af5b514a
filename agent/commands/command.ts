/**
 * A command a dashboard can send. Its arguments and result are described by
 * docs/schemas/commands/<name>.json ({request, result}), which the router enforces before run()
 * is called: a handler only ever sees arguments that passed its schema.
 */
export interface CommandContext {
  /** The request's id; events a long command raises carry it. */
  requestId: string;
  /** A progress event (<b>/events, type `<command>.progress` unless given) carrying the request id. */
  progress(fields: Record<string, unknown>, type?: string): void;
}

/**
 * Which in-flight budget a command runs in. `quick` (the default): answers in moments (ping,
 * state, devices, containers, stop, restart, ...). `long`: may take minutes or wait for hours
 * (pulls, pushes, updates waiting for the maintenance window, registry calls that hang): these
 * have their own smaller budget, so they can never leave the quick commands without a slot.
 */
export type CommandLane = 'quick' | 'long';

export interface CommandDefinition<Args = Record<string, unknown>, Result = unknown> {
  name: string;
  /** `quick` when not given. */
  lane?: CommandLane;
  run(args: Args, context: CommandContext): Promise<Result>;
}

/** Erases the argument type so definitions of different commands fit in one list. */
export function defineCommand<Args, Result>(definition: CommandDefinition<Args, Result>): CommandDefinition {
  return definition as unknown as CommandDefinition;
}
