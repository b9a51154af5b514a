import type Docker from 'dockerode';
import { collectStream, demuxEngineStream } from './engine-stream.js';

/**
 * The last lines a container printed (stdout and stderr), reading at most limitBytes of them:
 * `docker logs --tail`. Engine errors are thrown as they come (404 for a container gone).
 */
export async function lastLogLines(container: Docker.Container, o: { tail: number; tty: boolean; limitBytes: number }): Promise<{ lines: string[]; truncated: boolean }> {
  const raw = (await container.logs({ stdout: true, stderr: true, tail: o.tail, follow: false })) as unknown as Buffer | NodeJS.ReadableStream;
  const buf = Buffer.isBuffer(raw) ? raw : await collectStream(raw, o.limitBytes);
  const text = demuxEngineStream(buf.subarray(Math.max(0, buf.length - o.limitBytes)), o.tty).map((f) => f.text).join('');
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return { lines: lines.slice(-o.tail), truncated: buf.length >= o.limitBytes };
}
