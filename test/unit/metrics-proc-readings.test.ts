import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcReadings } from '../../agent/metrics/proc-readings.js';
import { tempDir } from '../helpers/temp.js';

/** A fake /proc and /sys with what ProcReadings reads. */
function fakeHost(o: { stat?: string; meminfo?: string; zones?: Array<[type: string, milli: string]> }) {
  const root = tempDir('rfa-proc-');
  const proc = join(root, 'proc');
  const sys = join(root, 'sys');
  mkdirSync(proc);
  mkdirSync(join(sys, 'class', 'thermal'), { recursive: true });
  if (o.stat) writeFileSync(join(proc, 'stat'), o.stat);
  if (o.meminfo) writeFileSync(join(proc, 'meminfo'), o.meminfo);
  for (const [i, [type, milli]] of (o.zones ?? []).entries()) {
    const zone = join(sys, 'class', 'thermal', `thermal_zone${i}`);
    mkdirSync(zone);
    writeFileSync(join(zone, 'type'), type + '\n');
    writeFileSync(join(zone, 'temp'), milli + '\n');
  }
  return { proc, sys, readings: new ProcReadings({ procRoot: proc, sysfsRoot: sys }) };
}

const stat = (user: number, idle: number, iowait: number) =>
  `cpu  ${user} 0 100 ${idle} ${iowait} 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 12345\n`;

describe('host metrics: the /proc and /sys readings', () => {
  it('CPU load is the busy share of the ticks since the previous reading, iowait counted as idle', async () => {
    const host = fakeHost({ stat: stat(1000, 5000, 500) });
    assert.equal(await host.readings.cpuLoad(), null, 'no tick moved since the first reading');
    // user +300, idle +600, iowait +100 between the two readings: 300 busy of 1000.
    writeFileSync(join(host.proc, 'stat'), stat(1300, 5600, 600));
    assert.equal(await host.readings.cpuLoad(), 30);
    assert.equal(await host.readings.cpuLoad(), null, 'no tick moved: no figure rather than a made-up one');
  });

  it('memory: used is total minus MemAvailable; without MemAvailable (old kernels) free + buffers + cached', async () => {
    const modern = fakeHost({
      meminfo:
        'MemTotal:        4000 kB\nMemFree:  1000 kB\nMemAvailable:    2500 kB\nBuffers: 100 kB\nCached: 900 kB\n',
    });
    assert.deepEqual(await modern.readings.memory(), { total: 4000 * 1024, used: 1500 * 1024, available: 2500 * 1024 });
    const old = fakeHost({ meminfo: 'MemTotal:        4000 kB\nMemFree:  1000 kB\nBuffers: 100 kB\nCached: 900 kB\n' });
    assert.deepEqual(await old.readings.memory(), { total: 4000 * 1024, used: 2000 * 1024, available: 2000 * 1024 });
  });

  it("temperature: the CPU's zone on a Jetson (CPU-therm) or a Pi (cpu-thermal), else the first; none: null", async () => {
    const jetson = fakeHost({
      zones: [
        ['AO-therm', '41500'],
        ['CPU-therm', '47000'],
        ['GPU-therm', '44500'],
      ],
    });
    assert.equal(await jetson.readings.cpuTemperature(), 47);
    const pi = fakeHost({ zones: [['cpu-thermal', '52582']] });
    assert.equal(await pi.readings.cpuTemperature(), 52.582);
    const other = fakeHost({
      zones: [
        ['acpitz', '30000'],
        ['pch_skylake', '45000'],
      ],
    });
    assert.equal(await other.readings.cpuTemperature(), 30);
    assert.equal(await fakeHost({}).readings.cpuTemperature(), null);
  });
});
