import { mkdir } from 'node:fs/promises';
import { AgentError } from '../core/errors.js';

/** Makes sure the agent's own directory exists before anything writes there. */
export class StateDir {
  readonly name = 'state-dir';

  constructor(private readonly dir: string) {}

  async start(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o750 });
    } catch (err) {
      throw new AgentError(
        'state_dir',
        `cannot create the state directory ${this.dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }

  async stop(): Promise<void> {}
}
