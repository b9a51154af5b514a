import { readSync, writeSync } from 'node:fs';
// The bindings' plain functions, not their LinuxPortBinding: that class makes a native Poller per
// open which @serialport/bindings-cpp 13 never frees (its destroy() drops the finalizer), ~3 KiB
// of RSS per open for ever (bench/serial-reopen.ts). The probe reads the non-blocking fd itself.
import * as untyped from '@serialport/bindings-cpp/dist/load-bindings.js';
import {
  Answer,
  Command,
  decodeHealth,
  decodeInfo,
  encodeRequest,
  findAnswer,
  type LidarHealth,
  type LidarInfo,
} from './lidar-protocol.js';

// load-bindings.d.ts declares each of them `Function`; these are the signatures bindings-cpp's own
// LinuxPortBinding calls them with.
const asyncOpen = untyped.asyncOpen as (path: string, options: Record<string, unknown>) => Promise<number>;
const asyncSet = untyped.asyncSet as (fd: number, options: Record<string, boolean>) => Promise<void>;
const asyncDrain = untyped.asyncDrain as (fd: number) => Promise<void>;
const asyncFlush = untyped.asyncFlush as (fd: number) => Promise<void>;
const asyncClose = untyped.asyncClose as (fd: number) => Promise<void>;

export type ProbeResult =
  | { ok: true; info: LidarInfo; health: LidarHealth }
  | { ok: false; code: 'no_answer' | 'not_a_lidar' | 'port_error' | 'port_closed' | 'bad_answer'; reason: string }
  | { ok: false; code: 'busy'; reason: string; holders: number[] };

/** The serial port as the probe uses it; tests may wrap a real one, never replace the protocol. */
export interface SerialLink {
  write(data: Buffer): Promise<void>;
  onData(listener: (data: Buffer) => void): void;
  onClose(listener: (err?: Error) => void): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export type OpenSerial = (path: string, baudRate: number) => Promise<SerialLink>;

/** How often the open port is read while the probe waits: an answer is 27 bytes at most. */
const READ_EVERY_MS = 5;

/**
 * Opens a tty 115200 8N1 raw through @serialport/bindings-cpp: O_NONBLOCK | O_NOCTTY, then
 * flock(LOCK_EX | LOCK_NB) (`lock: true`), so a second agent or any tool that locks the port
 * makes this open fail. DTR is set (on an A1 that keeps the motor stopped while we ask); a port
 * without modem lines (a pty, some bridges) answers that ioctl with ENOTTY, which means "no
 * modem lines", not a failure. HUPCL off: closing must not drop DTR under the ROS driver.
 */
export const openSerialPort: OpenSerial = async (path, baudRate) => {
  const fd = (await asyncOpen(path, {
    baudRate,
    dataBits: 8,
    stopBits: 1,
    parity: 'none',
    rtscts: false,
    xon: false,
    xoff: false,
    xany: false,
    hupcl: false,
    lock: true,
    vmin: 1,
    vtime: 0,
  })) as number;
  await Promise.resolve(
    asyncSet(fd, { brk: false, cts: false, dsr: false, dtr: true, rts: true, lowLatency: false }),
  ).catch(() => undefined);
  return new PolledTty(fd);
};

/** A non-blocking tty fd read on a short timer while open; nothing native is left behind at close. */
class PolledTty implements SerialLink {
  private readonly dataListeners: ((data: Buffer) => void)[] = [];
  private readonly closeListeners: ((err?: Error) => void)[] = [];
  private readonly buffer = Buffer.alloc(4096);
  private timer: NodeJS.Timeout | undefined;
  private open = true;
  private ended = false;

  constructor(private readonly fd: number) {
    this.timer = setInterval(() => this.drainInput(), READ_EVERY_MS);
  }

  onData(listener: (data: Buffer) => void): void {
    this.dataListeners.push(listener);
  }

  onClose(listener: (err?: Error) => void): void {
    this.closeListeners.push(listener);
  }

  async write(data: Buffer): Promise<void> {
    if (!this.open || this.ended) throw new Error('the port is closed');
    let written = 0;
    while (written < data.length) {
      try {
        written += writeSync(this.fd, data, written);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
    await asyncDrain(this.fd);
  }

  async flush(): Promise<void> {
    if (this.open && !this.ended) await asyncFlush(this.fd);
  }

  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    clearInterval(this.timer);
    await asyncClose(this.fd);
  }

  /** Everything readable now; EOF or EIO is the device gone (a pulled cable, a pty whose master closed). */
  private drainInput(): void {
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd, this.buffer, 0, this.buffer.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EINTR') return;
        return this.end(err as Error);
      }
      if (n === 0) return this.end();
      const chunk = Buffer.from(this.buffer.subarray(0, n));
      for (const listener of this.dataListeners) listener(chunk);
    }
  }

  private end(err?: Error): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.timer);
    for (const listener of this.closeListeners) listener(err);
  }
}

export interface ProbeOptions {
  path: string;
  baudRate: number;
  /** Per answer, as the SDK's 2 s. */
  timeoutMs: number;
  open?: OpenSerial;
  /**
   * Who else holds the port (/proc), asked again after the open and before every write: a ROS
   * driver that opened the port after the caller's own check must never receive a byte.
   */
  holders?: (path: string) => Promise<number[]>;
}

/**
 * Asks the lidar who it is (GET_INFO) and how it is (GET_HEALTH). STOP first, so a lidar left
 * scanning stops streaming; stale bytes are flushed and, if more arrive, skipped by the frame
 * finder. Every answer has a deadline, and the port is closed whatever happens.
 */
export async function probeLidar(o: ProbeOptions): Promise<ProbeResult> {
  let link: SerialLink;
  try {
    link = await (o.open ?? openSerialPort)(o.path, o.baudRate);
  } catch (err) {
    const message = (err as Error).message;
    // flock refused: another process (a second agent, a tool) has the port locked.
    if (/cannot lock port/i.test(message)) {
      return { ok: false, code: 'busy', reason: `${o.path} is locked by another process`, holders: [] };
    }
    return { ok: false, code: 'port_error', reason: `cannot open ${o.path}: ${message}` };
  }
  const reader = new AnswerReader(link);
  // Nothing is written unless, right before, nobody else has the port open.
  const send = async (command: number): Promise<ProbeResult | undefined> => {
    const held = o.holders ? await o.holders(o.path) : [];
    if (held.length > 0) {
      return { ok: false, code: 'busy', reason: `${o.path} is held open by process ${held.join(', ')}`, holders: held };
    }
    await link.write(encodeRequest(command));
    return undefined;
  };
  try {
    const stopRefused = await send(Command.STOP);
    if (stopRefused) return stopRefused;
    // The A1 needs at least 1 ms after STOP; give the stream time to dry up, then drop it.
    await sleep(20);
    await link.flush();
    reader.discard();

    const infoRefused = await send(Command.GET_INFO);
    if (infoRefused) return infoRefused;
    const infoPayload = await reader.next(Answer.INFO, o.timeoutMs);
    if ('failure' in infoPayload) {
      return infoPayload.failure.code === 'no_answer' && infoPayload.junk > 0
        ? {
            ok: false,
            code: 'not_a_lidar',
            reason: `the device at ${o.path} sent ${infoPayload.junk} bytes but no RPLidar answer to GET_INFO: not a lidar`,
          }
        : { ok: false, ...infoPayload.failure };
    }
    const info = decodeInfo(infoPayload.payload);

    const healthRefused = await send(Command.GET_HEALTH);
    if (healthRefused) return healthRefused;
    const healthPayload = await reader.next(Answer.HEALTH, o.timeoutMs);
    if ('failure' in healthPayload) return { ok: false, ...healthPayload.failure };
    return { ok: true, info, health: decodeHealth(healthPayload.payload) };
  } catch (err) {
    const code = reader.closed ? 'port_closed' : err instanceof RangeError ? 'bad_answer' : 'port_error';
    return { ok: false, code, reason: (err as Error).message };
  } finally {
    await link.close().catch(() => undefined);
  }
}

type Next =
  { payload: Buffer; junk: number } | { failure: { code: 'no_answer' | 'port_closed'; reason: string }; junk: number };

/** Collects bytes and hands out whole answers, skipping what is not one. */
class AnswerReader {
  private buffer = Buffer.alloc(0);
  private junk = 0;
  private wake: (() => void) | undefined;
  closed = false;

  constructor(link: SerialLink) {
    link.onData((data) => {
      this.buffer = Buffer.concat([this.buffer, data]);
      // A device that never stops talking must not grow this without end.
      if (this.buffer.length > 64 * 1024) {
        this.junk += this.buffer.length - 1024;
        this.buffer = this.buffer.subarray(-1024);
      }
      this.wake?.();
    });
    link.onClose(() => {
      this.closed = true;
      this.wake?.();
    });
  }

  discard(): void {
    this.buffer = Buffer.alloc(0);
  }

  async next(expected: { type: number; length: number }, timeoutMs: number): Promise<Next> {
    const deadline = Date.now() + timeoutMs;
    this.junk = 0;
    for (;;) {
      const found = findAnswer(this.buffer, expected);
      this.junk += found.skipped;
      this.buffer = Buffer.from(found.rest);
      if (found.found) return { payload: found.payload, junk: this.junk };
      if (this.closed)
        return {
          failure: { code: 'port_closed', reason: 'the port closed while waiting for an answer (unplugged?)' },
          junk: this.junk,
        };
      const left = deadline - Date.now();
      if (left <= 0) {
        const pending = this.buffer.length;
        return {
          failure: {
            code: 'no_answer',
            reason: `no answer within ${timeoutMs} ms${pending > 0 ? ` (${pending} bytes of an incomplete answer)` : ''}`,
          },
          junk: this.junk + pending,
        };
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
