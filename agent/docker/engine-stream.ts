/**
 * The Engine API multiplexes stdout and stderr of a container without a TTY in frames: one byte
 * stream type, three zero bytes, a big-endian u32 length, then the bytes. With a TTY the stream
 * is raw. Returns the payload text of either, stream type kept per frame.
 */
export function demuxEngineStream(buf: Buffer, tty: boolean): Array<{ stream: 'stdout' | 'stderr'; text: string }> {
  if (tty) return [{ stream: 'stdout', text: buf.toString('utf8') }];
  const out: Array<{ stream: 'stdout' | 'stderr'; text: string }> = [];
  let offset = 0;
  while (offset + 8 <= buf.length) {
    const type = buf[offset];
    const length = buf.readUInt32BE(offset + 4);
    const end = Math.min(buf.length, offset + 8 + length);
    out.push({ stream: type === 2 ? 'stderr' : 'stdout', text: buf.subarray(offset + 8, end).toString('utf8') });
    offset = end;
  }
  return out;
}

export function collectStream(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      if (size < limit) chunks.push(chunk);
      size += chunk.length;
    });
    stream.on('end', () => resolve(Buffer.concat(chunks).subarray(0, limit)));
    stream.on('error', reject);
  });
}
