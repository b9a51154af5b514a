import { scaled } from './time-scale.js';

/** Polls check until it returns a truthy value, or throws after ms with what was awaited. */
export async function waitUntil<T>(
  check: () => T | Promise<T>,
  ms: number,
  what: string,
  everyMs = 25,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + scaled(ms);
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
