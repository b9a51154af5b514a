import { defineCommand, type CommandDefinition } from '../commands/command.js';
import { AgentError } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import type { ContainersModule } from './containers-module.js';
import { isEngineFailure } from '../docker/engine.js';

/** The most bytes of log the logs command reads from the engine, whatever the line count. */
const LOG_BYTES = 192 * 1024;

/**
 * Container commands: only containers the local config defines, only what it defines for them.
 * No exec and no arbitrary run: the fleet can start, stop, restart and read, nothing more.
 */
export function containerCommands(d: { containers: ContainersModule; logTail: number }): CommandDefinition[] {
  const { containers } = d;
  // One log read at a time: a read streams everything the engine sends for the tail (30 MB for a
  // container that printed that much without a newline) through a small ring, and eight at once
  // made the agent's peak memory depend on how fast the garbage collector kept up (51-69 MiB
  // over the start on this rig). The others wait their turn; each read has the engine's deadline.
  const logReads = new SerialQueue();
  return [
    defineCommand({ name: 'containers', run: async () => containers.list() }),
    defineCommand({
      name: 'start',
      run: async ({ name }) => containers.startByCommand(name),
    }),
    defineCommand({ name: 'stop', run: async ({ name }) => containers.stopByCommand(name) }),
    defineCommand({
      name: 'restart',
      run: async ({ name }) => containers.restartByCommand(name),
    }),
    defineCommand({
      name: 'logs',
      run: async ({ name, tail }) => {
        const spec = containers.specOf(name);
        const lines = Math.min(tail ?? 100, d.logTail);
        const found = containers.requireContainer(name);
        try {
          const read = { tail: lines, tty: spec.tty, limitBytes: LOG_BYTES };
          return { name, ...(await logReads.run(() => containers.api.lastLogLines(found.id, read))) };
        } catch (err) {
          if (isEngineFailure(err, 'not_found')) throw new AgentError('not_found', `container ${name} is gone`);
          throw err;
        }
      },
    }),
  ];
}
