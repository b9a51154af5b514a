import { defineCommand, type CommandDefinition } from '../commands/command.js';
import { AgentError } from '../core/errors.js';
import type { ContainersModule } from './containers-module.js';
import { collectStream, demuxEngineStream } from '../docker/engine-stream.js';

/** The most bytes of log the logs command reads from the engine, whatever the line count. */
const LOG_BYTES = 192 * 1024;

/**
 * Container commands: only containers the local config defines, only what it defines for them.
 * No exec and no arbitrary run: the fleet can start, stop, restart and read, nothing more.
 */
export function containerCommands(d: { containers: ContainersModule; logTail: number }): CommandDefinition[] {
  const { containers } = d;
  return [
    defineCommand({ name: 'containers', run: async () => containers.list() }),
    defineCommand<{ name: string }, unknown>({ name: 'start', run: async ({ name }) => containers.startByCommand(name) }),
    defineCommand<{ name: string }, unknown>({ name: 'stop', run: async ({ name }) => containers.stopByCommand(name) }),
    defineCommand<{ name: string }, unknown>({ name: 'restart', run: async ({ name }) => containers.restartByCommand(name) }),
    defineCommand<{ name: string; tail?: number }, unknown>({
      name: 'logs',
      run: async ({ name, tail }) => {
        const spec = containers.specOf(name);
        const lines = Math.min(tail ?? 100, d.logTail);
        const found = containers.requireContainer(name);
        let raw: Buffer | NodeJS.ReadableStream;
        try {
          raw = (await containers.docker().getContainer(found.id).logs({ stdout: true, stderr: true, tail: lines, follow: false })) as unknown as Buffer | NodeJS.ReadableStream;
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode === 404) throw new AgentError('not_found', `container ${name} is gone`);
          throw err;
        }
        const buf = Buffer.isBuffer(raw) ? raw : await collectStream(raw, LOG_BYTES);
        const text = demuxEngineStream(buf.subarray(Math.max(0, buf.length - LOG_BYTES)), spec.tty).map((f) => f.text).join('');
        const all = text.split('\n');
        if (all.at(-1) === '') all.pop();
        return { name, lines: all.slice(-lines), truncated: buf.length >= LOG_BYTES };
      },
    }),
  ];
}
