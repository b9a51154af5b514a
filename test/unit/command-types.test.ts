import assert from 'node:assert/strict';
import { defineCommand, type CommandArgs, type CommandResult } from '../../agent/commands/command.js';
import type { UpdateOutcome } from '../../agent/state/types.js';
import { Contract } from '../helpers/contract.js';

/*
 * Compile-time checks: each `@ts-expect-error` below must be an error, or the build fails
 * ("unused directive"). They prove the command map types handlers by their command's name.
 */
export const typed = [
  defineCommand({ name: 'ping', run: async () => ({ pong: true, ts: new Date().toISOString() }) }),
  // @ts-expect-error ping's result is {pong: true, ts}: pong cannot be false
  defineCommand({ name: 'ping', run: async () => ({ pong: false, ts: 'now' }) }),
  // @ts-expect-error logs has no argument "file"
  defineCommand({ name: 'logs', run: async ({ file }) => ({ name: file, lines: [], truncated: false }) }),
  // @ts-expect-error the result lacks "truncated"
  defineCommand({ name: 'logs', run: async ({ name }) => ({ name, lines: [] }) }),
  defineCommand({
    name: 'logs',
    run: async ({ name, tail }) => ({ name, lines: [String(tail ?? 100)], truncated: false }),
  }),
  // @ts-expect-error no such command
  defineCommand({ name: 'exec', run: async () => ({}) }),
];

describe('the command map (issue 13.3)', () => {
  it('types arguments and results from docs/schemas/commands', () => {
    const args: CommandArgs<'update'> = { container: 'ros', image: 'x:1', force: true };
    const result: CommandResult<'update'> = { status: 'scheduled', container: 'ros', from: null, to: 'x:1', at: '' };
    assert.equal(args.container, result.container);
    assert.equal(typed.length, 6);
  });

  it('a rolled-back update, rollback or restore answers within its result schema (exitCode and logs)', () => {
    // What the updater returns when the new container fails its verification (updater.ts rollBack).
    const outcome: UpdateOutcome = {
      status: 'rolledback',
      container: 'ros',
      from: 'yahboomtechnology/ros-foxy:3.3.9',
      to: 'yahboomtechnology/ros-foxy:crash',
      at: '2026-12-06T15:00:00.000Z',
      error: { code: 'container_exited', message: 'the new ros exited with code 3' },
      exitCode: 3,
      logs: ['starting ros', 'lidar: no device'],
    };
    const contract = new Contract();
    for (const command of ['update', 'rollback', 'restore']) {
      assert.deepEqual(contract.commandResultProblems(command, outcome), [], command);
    }
  });
});
