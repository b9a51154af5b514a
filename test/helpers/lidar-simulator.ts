import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import {
  Answer,
  Command,
  encodeDescriptor,
  encodeHealth,
  encodeInfo,
  encodeScanSample,
} from '../../agent/devices/lidar-protocol.js';

/** How the simulated lidar behaves; tests switch it between requests. */
export type Behaviour =
  'answer' | 'mute' | 'junk-first' | 'stale-scan-first' | 'banner-first' | 'not-a-lidar' | 'unplug-mid-answer';

export const BANNER = 'RP LIDAR System.\r\nFirmware Ver 1.29 - rtm, HW Ver 7\r\nModel: 18\r\n';

// Hosts a pty without keeping its slave end open (socat does, which would make the port look
// held by another process), relaying the master to stdin/stdout. python3 is on every machine
// this project builds on (node-gyp needs it).
const RELAY = `
import os, pty, sys, tty, select, errno, time
m, s = pty.openpty()
tty.setraw(s)
sys.stderr.write(os.ttyname(s) + "\\n"); sys.stderr.flush()
os.close(s)
while True:
    r, _, _ = select.select([m, 0], [], [], 0.5)
    if m in r:
        try:
            data = os.read(m, 4096)
        except OSError as e:
            if e.errno == errno.EIO:
                time.sleep(0.01)
                continue
            raise
        os.write(1, data)
    if 0 in r:
        data = os.read(0, 4096)
        if not data:
            break
        os.write(m, data)
`;

/**
 * An RPLidar A1 on a pseudo-terminal, byte-exact to Slamtec's protocol: STOP (no answer),
 * RESET (the ASCII banner), SCAN (descriptor, then 5-byte samples until STOP), GET_INFO and
 * GET_HEALTH (descriptor + payload), with the misbehaviours a real unit or a wrong device shows.
 */
export class LidarSimulator {
  behaviour: Behaviour = 'answer';
  /** Added before each answer (a slow unit). */
  delayMs = 0;
  model = 0x18;
  firmware = { major: 1, minor: 29 };
  hardware = 7;
  serial = Buffer.from('0123456789ABCDEF0011223344556677', 'hex');
  health: { status: 0 | 1 | 2; errorCode: number } = { status: 0, errorCode: 0 };
  /** Every command byte received, in order. */
  readonly commands: number[] = [];
  private scanTimer: NodeJS.Timeout | undefined;
  private pending = Buffer.alloc(0);

  private constructor(
    private readonly relay: ChildProcessWithoutNullStreams,
    readonly ptyPath: string,
  ) {
    relay.stdout.on('data', (data: Buffer) => this.receive(data));
    relay.stdin.on('error', () => undefined);
  }

  static async start(): Promise<LidarSimulator> {
    const relay = spawn('python3', ['-c', RELAY], { stdio: ['pipe', 'pipe', 'pipe'] });
    const ptyPath = await new Promise<string>((resolve, reject) => {
      let err = '';
      relay.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        const line = err.split('\n')[0];
        if (err.includes('\n') && line?.startsWith('/dev/')) resolve(line);
      });
      relay.once('exit', (code) => reject(new Error(`pty relay exited ${code}: ${err}`)));
    });
    return new LidarSimulator(relay, ptyPath);
  }

  /** Bytes out to whoever has the tty open. */
  send(bytes: Buffer): void {
    if (this.relay.exitCode === null && !this.relay.killed) this.relay.stdin.write(bytes);
  }

  /** The USB cable pulled: the pty disappears. */
  async unplug(): Promise<void> {
    clearInterval(this.scanTimer);
    if (this.relay.exitCode !== null || this.relay.killed) return;
    const gone = new Promise((resolve) => this.relay.once('exit', resolve));
    this.relay.kill('SIGKILL');
    await gone;
  }

  stop(): Promise<void> {
    return this.unplug();
  }

  private receive(data: Buffer): void {
    this.pending = Buffer.concat([this.pending, data]);
    for (;;) {
      const at = this.pending.indexOf(0xa5);
      if (at < 0 || this.pending.length < at + 2) {
        this.pending = at < 0 ? Buffer.alloc(0) : this.pending.subarray(at);
        return;
      }
      const command = this.pending[at + 1]!;
      // Commands from 0x80 carry a length, a payload and a checksum.
      let size = 2;
      if (command >= 0x80) {
        if (this.pending.length < at + 3) return;
        size = 3 + this.pending[at + 2]! + 1;
        if (this.pending.length < at + size) return;
      }
      this.pending = this.pending.subarray(at + size);
      this.commands.push(command);
      this.handle(command);
    }
  }

  private handle(command: number): void {
    switch (command) {
      case Command.STOP:
        clearInterval(this.scanTimer);
        return;
      case Command.RESET:
        clearInterval(this.scanTimer);
        setTimeout(() => this.send(Buffer.from(BANNER, 'ascii')), 5);
        return;
      case Command.SCAN:
        this.send(encodeDescriptor({ length: 5, mode: 1, type: Answer.SCAN.type }));
        this.startScanning();
        return;
      case Command.GET_INFO:
        this.answer(
          Answer.INFO.type,
          encodeInfo({
            model: this.model,
            firmwareMajor: this.firmware.major,
            firmwareMinor: this.firmware.minor,
            hardware: this.hardware,
            serial: this.serial,
          }),
        );
        return;
      case Command.GET_HEALTH:
        this.answer(Answer.HEALTH.type, encodeHealth(this.health.status, this.health.errorCode));
        return;
      default:
        return;
    }
  }

  startScanning(): void {
    clearInterval(this.scanTimer);
    let angle = 0;
    this.scanTimer = setInterval(() => {
      this.send(encodeScanSample({ quality: 47, start: angle === 0, angleDeg: angle, distanceMm: 1000 }));
      angle = (angle + 90) % 360;
    }, 5);
  }

  private answer(type: number, payload: Buffer): void {
    const frame = Buffer.concat([encodeDescriptor({ length: payload.length, mode: 0, type }), payload]);
    const prefix: Record<Behaviour, Buffer> = {
      answer: Buffer.alloc(0),
      mute: Buffer.alloc(0),
      'junk-first': Buffer.from([0x00, 0xff, 0xa5, 0x13, 0x5a, 0xa5, 0x00]),
      'stale-scan-first': Buffer.concat([
        encodeScanSample({ quality: 47, start: true, angleDeg: 0, distanceMm: 1000 }),
        encodeScanSample({ quality: 47, start: false, angleDeg: 90, distanceMm: 1000 }),
      ]),
      'banner-first': Buffer.from(BANNER, 'ascii'),
      'not-a-lidar': Buffer.alloc(0),
      'unplug-mid-answer': Buffer.alloc(0),
    };
    setTimeout(() => {
      switch (this.behaviour) {
        case 'mute':
          return;
        case 'not-a-lidar':
          this.send(Buffer.from('AT+OK\r\nERROR\r\n'.repeat(4), 'ascii'));
          return;
        case 'unplug-mid-answer':
          this.send(frame.subarray(0, 9));
          setTimeout(() => void this.unplug(), 20);
          return;
        default:
          this.send(Buffer.concat([prefix[this.behaviour], frame]));
      }
    }, this.delayMs);
  }
}
