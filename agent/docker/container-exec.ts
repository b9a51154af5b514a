import type Docker from 'dockerode';
import { collectStream, demuxEngineStream } from './engine-stream.js';

export interface ExecResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command in a running container (argv, never a shell string of ours) and waits for it:
 * its exit code and what it printed, at most `limit` bytes.
 */
export async function execInContainer(
  container: Docker.Container,
  cmd: string[],
  o: { user?: string; limit?: number } = {},
): Promise<ExecResult> {
  const exec = await container.exec({
    Cmd: cmd,
    AttachStdout: true,
    AttachStderr: true,
    ...(o.user ? { User: o.user } : {}),
  });
  const stream = (await exec.start({ hijack: false })) as NodeJS.ReadableStream;
  const frames = demuxEngineStream(await collectStream(stream, o.limit ?? 64 * 1024), false);
  const text = (kind: 'stdout' | 'stderr') =>
    frames
      .filter((f) => f.stream === kind)
      .map((f) => f.text)
      .join('');
  return { exitCode: await exitCodeOf(exec), stdout: text('stdout'), stderr: text('stderr') };
}

/** The stream may end a moment before the engine records the exit. */
async function exitCodeOf(exec: Docker.Exec): Promise<number | null> {
  for (let i = 0; ; i += 1) {
    const info = (await exec.inspect()) as { Running: boolean; ExitCode: number | null };
    if (!info.Running || i >= 50) return info.ExitCode;
    await new Promise((r) => setTimeout(r, 20));
  }
}
