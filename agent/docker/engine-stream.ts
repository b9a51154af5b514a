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

/**
 * The newest `capacity` bytes of everything written: memory stays at capacity whatever passes
 * through (a logs tail of a container that printed 30 MB without a newline).
 */
export class ByteRing {
  private readonly buf: Buffer;
  private start = 0;
  private length = 0;
  /** Whether older bytes were dropped. */
  overflowed = false;

  constructor(readonly capacity: number) {
    this.buf = Buffer.alloc(capacity);
  }

  write(chunk: Buffer): void {
    if (chunk.length === 0 || this.capacity === 0) return;
    if (chunk.length >= this.capacity) {
      if (chunk.length > this.capacity || this.length > 0) this.overflowed = true;
      chunk.copy(this.buf, 0, chunk.length - this.capacity);
      this.start = 0;
      this.length = this.capacity;
      return;
    }
    const free = this.capacity - this.length;
    if (chunk.length > free) {
      this.overflowed = true;
      const drop = chunk.length - free;
      this.start = (this.start + drop) % this.capacity;
      this.length -= drop;
    }
    const at = (this.start + this.length) % this.capacity;
    const first = Math.min(chunk.length, this.capacity - at);
    chunk.copy(this.buf, at, 0, first);
    if (first < chunk.length) chunk.copy(this.buf, 0, first);
    this.length += chunk.length;
  }

  contents(): Buffer {
    const end = this.start + this.length;
    if (end <= this.capacity) return Buffer.from(this.buf.subarray(this.start, end));
    return Buffer.concat([this.buf.subarray(this.start), this.buf.subarray(0, end - this.capacity)]);
  }
}

/**
 * The Engine API's multiplexed stream (see demuxEngineStream) read chunk by chunk: a frame may
 * span chunks and a chunk may hold many frames. Hands each payload piece on as it arrives.
 */
export class EngineFrameReader {
  private header = Buffer.alloc(0);
  private remaining = 0;

  constructor(
    private readonly tty: boolean,
    private readonly onPayload: (payload: Buffer) => void,
  ) {}

  write(chunk: Buffer): void {
    if (this.tty) {
      this.onPayload(chunk);
      return;
    }
    let offset = 0;
    while (offset < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - offset);
        this.onPayload(chunk.subarray(offset, offset + take));
        this.remaining -= take;
        offset += take;
        continue;
      }
      const need = 8 - this.header.length;
      this.header = Buffer.concat([this.header, chunk.subarray(offset, offset + need)]);
      offset += Math.min(need, chunk.length - offset);
      if (this.header.length === 8) {
        this.remaining = this.header.readUInt32BE(4);
        this.header = Buffer.alloc(0);
      }
    }
  }
}
