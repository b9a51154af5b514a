/**
 * The RPLidar A1 serial protocol (Slamtec's SDK and manual), as pure functions: what to send,
 * and how to find and decode an answer in a byte stream that may start with junk, stale scan
 * samples or a reset banner. No I/O here, so every framing case is testable byte for byte.
 */
export const SYNC = 0xa5;
export const SYNC2 = 0x5a;

export const Command = {
  STOP: 0x25,
  RESET: 0x40,
  SCAN: 0x20,
  GET_INFO: 0x50,
  GET_HEALTH: 0x52,
  GET_SAMPLERATE: 0x59,
} as const;

/** Data-type byte of each answer's descriptor, and the payload length it promises. */
export const Answer = {
  INFO: { type: 0x04, length: 20 },
  HEALTH: { type: 0x06, length: 3 },
  SAMPLERATE: { type: 0x15, length: 4 },
  SCAN: { type: 0x81, length: 5 },
} as const;

/** `A5 cmd` for commands without payload; `A5 cmd len payload chk` otherwise (chk = XOR of all). */
export function encodeRequest(command: number, payload?: Uint8Array): Buffer {
  if (!payload || payload.length === 0) return Buffer.from([SYNC, command]);
  const out = Buffer.from([SYNC, command, payload.length, ...payload, 0]);
  out[out.length - 1] = out.subarray(0, -1).reduce((acc, b) => acc ^ b, 0);
  return out;
}

export interface Descriptor {
  length: number;
  /** 0 single answer, 1 multiple (scan). */
  mode: number;
  type: number;
}

/** 7 bytes: A5 5A, u32 LE (bits 0-29 length, 30-31 mode), data type. */
export function encodeDescriptor(d: Descriptor): Buffer {
  const out = Buffer.alloc(7);
  out[0] = SYNC;
  out[1] = SYNC2;
  out.writeUInt32LE((((d.mode & 0x3) << 30) >>> 0) | (d.length & 0x3fffffff), 2);
  out[6] = d.type;
  return out;
}

export type FrameSearch =
  { found: true; payload: Buffer; rest: Buffer; skipped: number } | { found: false; rest: Buffer; skipped: number };

/**
 * Looks for the descriptor of the expected answer followed by its whole payload. Bytes before
 * it, and descriptors of other answers (a scan still streaming), are skipped and counted. When
 * the answer is not complete yet, `rest` keeps what may still become it.
 */
export function findAnswer(buffer: Buffer, expected: { type: number; length: number }): FrameSearch {
  let skipped = 0;
  let at = 0;
  for (;;) {
    const sync = buffer.indexOf(SYNC, at);
    if (sync < 0) return { found: false, rest: Buffer.alloc(0), skipped: skipped + (buffer.length - at) };
    skipped += sync - at;
    if (buffer.length - sync < 7) return { found: false, rest: buffer.subarray(sync), skipped };
    if (buffer[sync + 1] !== SYNC2) {
      at = sync + 1;
      skipped += 1;
      continue;
    }
    const word = buffer.readUInt32LE(sync + 2);
    const length = word & 0x3fffffff;
    const type = buffer[sync + 6]!;
    if (type !== expected.type || length !== expected.length) {
      at = sync + 7;
      skipped += 7;
      continue;
    }
    const end = sync + 7 + length;
    if (buffer.length < end) return { found: false, rest: buffer.subarray(sync), skipped };
    return { found: true, payload: Buffer.from(buffer.subarray(sync + 7, end)), rest: buffer.subarray(end), skipped };
  }
}

export interface LidarInfo {
  model: number;
  /** A1M8 for model 0x18: A<major>M<sub-model>. */
  modelName: string;
  /** major.minor with a two-digit minor, as the SDK prints it: 1.29. */
  firmware: string;
  hardware: number;
  /** The 16 serial bytes in order, 32 upper-case hex digits, as the SDK prints them. */
  serial: string;
}

export function decodeInfo(payload: Buffer): LidarInfo {
  if (payload.length !== Answer.INFO.length)
    throw new RangeError(`GET_INFO payload is ${payload.length} bytes, not 20`);
  const model = payload[0]!;
  const minor = payload[1]!;
  const major = payload[2]!;
  return {
    model,
    modelName: `A${model >> 4}M${model & 0x0f}`,
    firmware: `${major}.${String(minor).padStart(2, '0')}`,
    hardware: payload[3]!,
    serial: payload.subarray(4, 20).toString('hex').toUpperCase(),
  };
}

export type HealthStatus = 'good' | 'warning' | 'error';

export interface LidarHealth {
  status: HealthStatus;
  errorCode: number;
}

export function decodeHealth(payload: Buffer): LidarHealth {
  if (payload.length !== Answer.HEALTH.length)
    throw new RangeError(`GET_HEALTH payload is ${payload.length} bytes, not 3`);
  const raw = payload[0]!;
  const status: HealthStatus | undefined = raw === 0 ? 'good' : raw === 1 ? 'warning' : raw === 2 ? 'error' : undefined;
  if (!status) throw new RangeError(`GET_HEALTH status ${raw} is not 0, 1 or 2`);
  return { status, errorCode: payload.readUInt16LE(1) };
}

/** The inverse of decodeInfo, for simulators and tests. */
export function encodeInfo(info: {
  model: number;
  firmwareMajor: number;
  firmwareMinor: number;
  hardware: number;
  serial: Buffer;
}): Buffer {
  return Buffer.concat([
    Buffer.from([info.model, info.firmwareMinor, info.firmwareMajor, info.hardware]),
    info.serial.subarray(0, 16),
  ]);
}

export function encodeHealth(status: 0 | 1 | 2, errorCode: number): Buffer {
  const out = Buffer.alloc(3);
  out[0] = status;
  out.writeUInt16LE(errorCode, 1);
  return out;
}

/** One 5-byte scan sample (quality, start flag, angle in degrees, distance in mm). */
export function encodeScanSample(s: { quality: number; start: boolean; angleDeg: number; distanceMm: number }): Buffer {
  const angleQ6 = Math.round(s.angleDeg * 64) & 0x7fff;
  const distanceQ2 = Math.round(s.distanceMm * 4) & 0xffff;
  const out = Buffer.alloc(5);
  out[0] = ((s.quality & 0x3f) << 2) | (s.start ? 0b01 : 0b10);
  out[1] = ((angleQ6 & 0x7f) << 1) | 1;
  out[2] = angleQ6 >> 7;
  out.writeUInt16LE(distanceQ2, 3);
  return out;
}
