import { SerialPort } from 'serialport';
import { Answer, Command, decodeHealth, decodeInfo, encodeRequest, findAnswer, type LidarHealth, type LidarInfo } from './lidar-protocol.js';

export type ProbeResult =
  | { ok: true; info: LidarInfo; health: LidarHealth }
  | { ok: false; code: 'no_answer' | 'not_a_lidar' | 'port_error' | 'port_closed' | 'bad_answer'; reason: string };

/** The serial port as the probe uses it; tests may wrap a real one, never replace the protocol. */
export interface SerialLink {
  write(data: Buffer): Promise<void>;
  onData(listener: (data: Buffer) => void): void;
  onClose(listener: (err?: Error) => void): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export type OpenSerial = (path: string, baudRate: number) => Promise<SerialLink>;

/**
 * Opens a tty with serialport. DTR is set (on an A1 that keeps the motor stopped while we ask);
 * a port without modem lines (a pty, some bridges) answers that ioctl with ENOTTY, which means
 * "no modem lines", not a failure.
 */
export const openSerialPort: OpenSerial = async (path, baudRate) => {
  const port = new SerialPort({ path, baudRate, dataBits: 8, stopBits: 1, parity: 'none', rtscts: false, autoOpen: false, hupcl: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  port.on('error', () => undefined);
  await new Promise<void>((resolve) => port.set({ dtr: true }, () => resolve()));
  return {
    write: (data) => new Promise((resolve, reject) => port.write(data, (err) => (err ? reject(err) : port.drain(() => resolve())))),
    onData: (listener) => port.on('data', listener),
    onClose: (listener) => port.on('close', (err?: Error | null) => listener(err ?? undefined)),
    flush: () => new Promise((resolve) => port.flush(() => resolve())),
    close: () =>
      new Promise((resolve) => {
        if (!port.isOpen) return resolve();
        port.close(() => resolve());
      }),
  };
};

export interface ProbeOptions {
  path: string;
  baudRate: number;
  /** Per answer, as the SDK's 2 s. */
  timeoutMs: number;
  open?: OpenSerial;
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
    return { ok: false, code: 'port_error', reason: `cannot open ${o.path}: ${(err as Error).message}` };
  }
  const reader = new AnswerReader(link);
  try {
    await link.write(encodeRequest(Command.STOP));
    // The A1 needs at least 1 ms after STOP; give the stream time to dry up, then drop it.
    await sleep(20);
    await link.flush();
    reader.discard();

    await link.write(encodeRequest(Command.GET_INFO));
    const infoPayload = await reader.next(Answer.INFO, o.timeoutMs);
    if ('failure' in infoPayload) {
      return infoPayload.failure.code === 'no_answer' && infoPayload.junk > 0
        ? { ok: false, code: 'not_a_lidar', reason: `the device at ${o.path} sent ${infoPayload.junk} bytes but no RPLidar answer to GET_INFO: not a lidar` }
        : { ok: false, ...infoPayload.failure };
    }
    const info = decodeInfo(infoPayload.payload);

    await link.write(encodeRequest(Command.GET_HEALTH));
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

type Next = { payload: Buffer; junk: number } | { failure: { code: 'no_answer' | 'port_closed'; reason: string }; junk: number };

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
      if (this.closed) return { failure: { code: 'port_closed', reason: 'the port closed while waiting for an answer (unplugged?)' }, junk: this.junk };
      const left = deadline - Date.now();
      if (left <= 0) {
        const pending = this.buffer.length;
        return {
          failure: { code: 'no_answer', reason: `no answer within ${timeoutMs} ms${pending > 0 ? ` (${pending} bytes of an incomplete answer)` : ''}` },
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
