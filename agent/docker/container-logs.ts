import type Docker from 'dockerode';
import { ByteRing, EngineFrameReader } from './engine-stream.js';

/**
 * The last lines a container printed (stdout and stderr), keeping at most limitBytes of them:
 * `docker logs --tail`. The engine's answer is streamed through a ring of limitBytes, never
 * held whole: a tail of 100 "lines" of a container that printed 30 MB without a newline is
 * 30 MB, and eight such requests at once must not cost the robot its memory.
 * Engine errors are thrown as they come (404 for a container gone).
 */
export async function lastLogLines(
  container: Docker.Container,
  o: { tail: number; tty: boolean; limitBytes: number },
): Promise<{ lines: string[]; truncated: boolean }> {
  const stream = await openLogStream(container, o.tail);
  const ring = new ByteRing(o.limitBytes);
  const frames = new EngineFrameReader(o.tty, (payload) => ring.write(payload));
  for await (const chunk of stream as AsyncIterable<Buffer>) frames.write(chunk);
  const kept = ring.contents();
  let text = kept.toString('utf8');
  // A cut ring starts inside a line (maybe inside a character): drop that partial first line.
  if (ring.overflowed) text = text.slice(text.indexOf('\n') + 1);
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return { lines: lines.slice(-o.tail), truncated: ring.overflowed };
}

/**
 * GET /containers/{id}/logs as a stream even without follow (dockerode buffers the whole body
 * unless following). The engine modem's read deadline covers the stream to its end.
 */
function openLogStream(container: Docker.Container, tail: number): Promise<NodeJS.ReadableStream> {
  return new Promise((resolve, reject) => {
    (container.modem as { dial: (o: unknown, cb: (err: Error | null, s: NodeJS.ReadableStream) => void) => void }).dial(
      {
        path: `/containers/${container.id}/logs?`,
        method: 'GET',
        options: { stdout: true, stderr: true, tail, follow: false },
        isStream: true,
        statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
      },
      (err, stream) => (err ? reject(err) : resolve(stream)),
    );
  });
}
