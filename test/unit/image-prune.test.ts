import assert from 'node:assert/strict';
import { compareCreated, planPrune } from '../../agent/images/image-pruner.js';
import type { ImageSummary } from '../../agent/state/types.js';

const image = (id: string, tags: string[], created: string): ImageSummary => ({
  id: `sha256:${id.padEnd(64, '0')}`,
  tags,
  digests: [],
  size: 100,
  sharedSize: 40,
  uniqueSize: 60,
  created,
  layers: [],
  containers: 0,
});

describe('prune plan (pure)', () => {
  it('orders engine timestamps by value, whatever their fraction digits', () => {
    assert.ok(compareCreated('2026-01-01T12:00:00Z', '2026-01-01T12:00:00.5Z') < 0);
    assert.ok(compareCreated('2026-01-01T12:00:00.123456789Z', '2026-01-01T12:00:00.12345678Z') > 0);
    assert.equal(compareCreated('2026-01-01T12:00:01Z', '2026-01-01T12:00:01.000Z'), 0);
  });

  it('keeps the newest per repository, in-use and protected images, and never touches unmanaged names', () => {
    const images = [
      image('a', ['yahboomtechnology/ros-foxy:1'], '2026-01-01T00:00:01Z'),
      image('b', ['yahboomtechnology/ros-foxy:2'], '2026-01-01T00:00:02Z'),
      image('c', ['yahboomtechnology/ros-foxy:3'], '2026-01-01T00:00:03Z'),
      image('d', ['yahboomtechnology/ros-foxy:4', 'other/name:1'], '2026-01-01T00:00:00.5Z'),
      image('e', ['other/tool:1'], '2020-01-01T00:00:00Z'),
      image('f', ['yahboomtechnology/ros-humble:1'], '2020-01-01T00:00:00Z'),
    ];
    const steps = planPrune({
      images,
      managed: ['yahboomtechnology/*'],
      keep: 1,
      inUse: new Set([images[1]!.id]),
      protectedIds: new Set([images[0]!.id]),
    });
    assert.deepEqual(
      steps.map((s) => s.tags),
      [['yahboomtechnology/ros-foxy:4']],
    );
    assert.equal(steps[0]!.size, 60);
  });
});
