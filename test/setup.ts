import { removeTempDirs } from './helpers/temp.js';
import { TIME_SCALE } from './helpers/time-scale.js';
import { startRig, stopRig, type Rig } from './rig/index.js';

/**
 * Mocha root hooks: the rig starts once per run and stops at the end; and any unhandled promise
 * rejection or uncaught exception anywhere in the test process fails the suite, because on a
 * robot either would be a bug.
 */
let current: Rig | undefined;
const escaped: unknown[] = [];

process.on('unhandledRejection', (reason) => escaped.push(reason));
process.on('uncaughtException', (err) => escaped.push(err));

/** The running rig; RIG=0 runs without one (unit tests only), and rig tests are then skipped. */
export function rig(): Rig {
  if (!current) throw new Error('the test rig is not running (RIG=0?)');
  return current;
}

export function needRig(context: Mocha.Context): Rig {
  if (!current) context.skip();
  return current!;
}

function assertNothingEscaped(): void {
  if (escaped.length === 0) return;
  const reasons = escaped.splice(0).map((r) => (r instanceof Error ? (r.stack ?? r.message) : String(r)));
  throw new Error(`unhandled rejection or uncaught exception:\n${reasons.join('\n---\n')}`);
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    if (process.env.RIG === '0') return;
    this.timeout(180_000 * TIME_SCALE);
    current = await startRig();
  },
  beforeEach(this: Mocha.Context) {
    // Each test's own timeout, stretched like its waits under an emulated Node (helpers/time-scale.ts).
    const test = this.currentTest;
    if (test && TIME_SCALE !== 1 && test.timeout() > 0) test.timeout(test.timeout() * TIME_SCALE);
  },
  afterEach() {
    assertNothingEscaped();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    // Give late timers of the last test a moment to misbehave where we can see it.
    await new Promise((r) => setTimeout(r, 100));
    try {
      assertNothingEscaped();
    } finally {
      if (current) await stopRig(current);
      current = undefined;
      removeTempDirs();
    }
  },
};
