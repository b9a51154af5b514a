/**
 * How much slower this test process runs than the machine the tests' waits were written for:
 * scripts/test-arm64.sh runs the suite under an emulated arm64 Node (qemu-user), which takes
 * several times as long to start an agent or answer a message. Every wait a test makes for the
 * agent goes through `scaled`, so the same tests hold there without loosening them here
 * (TEST_TIME_SCALE unset = 1).
 */
export const TIME_SCALE = scaleFrom(process.env.TEST_TIME_SCALE);

export function scaled(ms: number): number {
  return Math.round(ms * TIME_SCALE);
}

function scaleFrom(text: string | undefined): number {
  const n = Number(text ?? '1');
  if (!Number.isFinite(n) || n < 1) throw new Error(`TEST_TIME_SCALE must be a number >= 1, not ${text}`);
  return n;
}
