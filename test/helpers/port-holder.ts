import { spawn, type ChildProcess } from 'node:child_process';

// Opens the port read-write without a lock, as the ROS driver does, and says so only once the
// descriptor is open: a test then knows, without sleeping, that /proc shows the port held.
const HOLD = `
const fs = require('node:fs');
const fd = fs.openSync(process.argv[1], fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
process.stdout.write('holding ' + fd + '\\n');
setInterval(() => undefined, 1 << 30);
`;

/** Another process holding a tty open (the ROS driver in its container, for the agent). */
export class PortHolder {
  private constructor(private readonly child: ChildProcess) {}

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves once the child has the port open. */
  static async hold(path: string): Promise<PortHolder> {
    const child = spawn(process.execPath, ['-e', HOLD, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('holding ')) resolve();
      });
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.once('exit', (code) => reject(new Error(`the port holder exited ${code} before holding ${path}: ${err}`)));
    });
    return new PortHolder(child);
  }

  /** Resolves once the child is gone, so /proc no longer shows the port held. */
  async release(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await gone;
  }
}
