import assert from 'node:assert/strict';
import { metricsNewsworthy } from '../../agent/metrics/metrics-deadband.js';
import type { HostMetrics } from '../../agent/state/types.js';

const GiB = 1024 ** 3;
const disk = (available: number, role: 'state' | 'docker' = 'state') => {
  const path = role === 'state' ? '/var/lib/robot-agent' : '/var/lib/docker';
  return { role, path, total: 64 * GiB, free: 20 * GiB, available };
};
const memory = (available: number) => ({ total: 4 * GiB, used: 4 * GiB - available, available });
const deadband = { minSpacingMs: 300_000, maxAgeMs: 900_000 };

function sample(atSeconds: number, extra: Partial<HostMetrics> = {}): HostMetrics {
  return {
    sampledAt: new Date(Date.UTC(2026, 11, 6, 10, 0, 0) + atSeconds * 1000).toISOString(),
    cpuLoad: 20,
    loadAverage: [0.5, 0.5, 0.5],
    memory: memory(3 * GiB),
    disks: [disk(18 * GiB)],
    cpuTemperature: 45,
    uptime: 1000 + atSeconds,
    ...extra,
  };
}

describe('host metrics deadband: which samples reach the state', () => {
  it('the first sample always; an idle wobble never before the sample is old', () => {
    assert.equal(metricsNewsworthy(null, sample(0), deadband), true);
    const wobble = sample(30, { cpuLoad: 35, loadAverage: [0.9, 0.6, 0.5], memory: memory(2.8 * GiB) });
    wobble.cpuTemperature = 47;
    assert.equal(metricsNewsworthy(sample(0), wobble, deadband), false);
    assert.equal(metricsNewsworthy(sample(0), { ...wobble, sampledAt: sample(600).sampledAt }, deadband), false);
    assert.equal(metricsNewsworthy(sample(0), sample(900), deadband), true, 'at most 15 min stale');
  });

  it('a big move of CPU, memory or temperature: at most once per spacing', () => {
    const busy = (at: number) => sample(at, { cpuLoad: 90 });
    assert.equal(metricsNewsworthy(sample(0), busy(30), deadband), false);
    assert.equal(metricsNewsworthy(sample(0), busy(300), deadband), true);
    assert.equal(metricsNewsworthy(sample(0), sample(300, { memory: memory(2.5 * GiB) }), deadband), true);
    assert.equal(metricsNewsworthy(sample(0), sample(300, { cpuTemperature: 51 }), deadband), true);
    assert.equal(metricsNewsworthy(sample(0), sample(300, { cpuTemperature: null }), deadband), true);
  });

  it('a disk that fills (2 % of it) or a disk that appears is news at once', () => {
    const filled = sample(30, { disks: [disk(16.5 * GiB)] });
    assert.equal(metricsNewsworthy(sample(0), filled, deadband), true);
    const little = sample(30, { disks: [disk(17.5 * GiB)] });
    assert.equal(metricsNewsworthy(sample(0), little, deadband), false);
    const docker = sample(30, { disks: [...sample(0).disks, disk(18 * GiB, 'docker')] });
    assert.equal(metricsNewsworthy(sample(0), docker, deadband), true);
  });
});
