import type { Writable } from 'node:stream';

/** Text out to stdout or stderr that a pipe cannot lose. */
export interface Output {
  /** Resolves when the stream takes more (after 'drain' when its buffer is full). Never rejects. */
  write(text: string): Promise<void>;
  /** Resolves when everything written so far is handed to the OS: only then may the process exit. */
  flush(): Promise<void>;
}

/** Big outputs go out in pieces, so a 10,000-robot table waits for the reader instead of piling up. */
const CHUNK = 64 * 1024;

/**
 * A pipe (`robot-fleet list | cat`) takes 64 KiB at a time; Node keeps the rest in memory and
 * process.exit drops it. So writes wait for 'drain', and the process waits for flush() before exit.
 * A reader that goes away (`list | head`) is EPIPE: the rest is dropped without an uncaught error.
 */
export function streamOutput(stream: Writable): Output {
  let broken = false;
  stream.on('error', () => {
    broken = true;
  });
  const drained = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        stream.off('drain', done);
        stream.off('close', done);
        stream.off('error', done);
        resolve();
      };
      stream.on('drain', done);
      stream.on('close', done);
      stream.on('error', done);
    });
  return {
    async write(text) {
      for (let at = 0; at < text.length && !broken; at += CHUNK) {
        if (!stream.write(text.slice(at, at + CHUNK))) await drained();
      }
    },
    flush: () =>
      broken || stream.destroyed
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            // The callback of an empty write runs once every write before it has gone out (or failed).
            stream.write('', () => resolve());
          }),
  };
}
