/**
 * Native memory per serial open/close: the lidar probe opens and closes the lidar's tty on every
 * attach, replug and check, for months. Opens the rig's pty lidar N times each way and prints the
 * RSS growth per 1,000 opens (after a full GC, so the JS heap does not hide or fake a trend):
 *   - fs.open/close of the same pty: the baseline (nothing retained);
 *   - a serialport 13 SerialPort opened and closed (what the probe used until 2026-12-06: its
 *     @serialport/bindings-cpp Poller is never freed: 0.9-1.7 KiB a time here, linear);
 *   - the probe's own opener (agent/devices/lidar-probe.ts, openSerialPort), as shipped.
 * Prints figures; not part of the test suite.
 *
 *   npm run build && node build/bench/serial-reopen.js [opens per way, default 20000, as many again to warm up]
 */
import { closeSync, constants, openSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SerialPort } from 'serialport';
import { openSerialPort } from '../agent/devices/lidar-probe.js';
import { LidarSimulator } from '../test/helpers/lidar-simulator.js';
import { runBench } from './bench-kit.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const OPENS = Number(process.argv[2] ?? 20_000);

/** RSS after the collector has run twice (weak callbacks, then what they freed). */
async function settledRss(): Promise<number> {
  for (let i = 0; i < 2; i += 1) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().rss;
}

/**
 * KiB of RSS growth per 1,000 opens, after as many opens again as a warm-up: allocator arenas and
 * the heap grow to their working size first (about 40,000 opens for the probe's opener), and that
 * is no leak; what still grows after is.
 */
async function growthPer1000(openClose: () => Promise<void>): Promise<number> {
  for (let i = 0; i < OPENS; i += 1) await openClose();
  const before = await settledRss();
  for (let i = 0; i < OPENS; i += 1) await openClose();
  const after = await settledRss();
  return ((after - before) / 1024) * (1000 / OPENS);
}

async function main(): Promise<void> {
  const sim = await LidarSimulator.start();
  try {
    const path = sim.ptyPath;
    const fsOpen = async () => closeSync(openSync(path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK));
    const serialport = async () => {
      const port = new SerialPort({ path, baudRate: 115200, autoOpen: false, hupcl: false, lock: true });
      await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
      await new Promise<void>((resolve) => port.close(() => resolve()));
    };
    const probeOpener = async () => {
      const link = await openSerialPort(path, 115200);
      await link.close();
    };
    const rows: [string, number][] = [];
    // The baseline first and last: its two figures bound the noise of the measure itself.
    rows.push(['fs.open/close (baseline)', await growthPer1000(fsOpen)]);
    rows.push(['probe opener (openSerialPort)', await growthPer1000(probeOpener)]);
    rows.push(['serialport 13 SerialPort', await growthPer1000(serialport)]);
    rows.push(['fs.open/close (baseline, again)', await growthPer1000(fsOpen)]);
    console.log(`RSS growth per 1,000 open/close of ${path} (${OPENS} opens each after as many to warm up, after GC):`);
    for (const [name, kib] of rows) console.log(`  ${name.padEnd(34)} ${kib.toFixed(0).padStart(7)} KiB`);
  } finally {
    await sim.stop();
  }
}

runBench(main);
